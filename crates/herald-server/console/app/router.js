// @ts-check
// Client-side routes in the URL hash (#/admin/create, #/users…), so the server needs no fallback.
import { useEffect, useState } from './html.js';

/** @returns {string[]} the path segments of the current hash route */
function current() {
  const raw = location.hash.replace(/^#\/?/, '').split('?')[0];
  return raw.split('/').filter(Boolean).map(decodeURIComponent);
}

/** The current route as segments; re-renders on navigation. @returns {string[]} */
export function useRoute() {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const onChange = () => setRoute(current());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

/** @param {string} path e.g. '/admin/broadcasts/3' */
export function navigate(path) {
  location.hash = `#${path}`;
}

// @ts-check
// Hooks shared by screens: page visibility and polling while the page is visible.
import { useEffect, useRef, useState } from './html.js';

/** True while the tab is visible. @returns {boolean} */
export function useVisible() {
  const [visible, setVisible] = useState(document.visibilityState === 'visible');
  useEffect(() => {
    const onChange = () => setVisible(document.visibilityState === 'visible');
    document.addEventListener('visibilitychange', onChange);
    return () => document.removeEventListener('visibilitychange', onChange);
  }, []);
  return visible;
}

/**
 * Runs `fn` now and every `ms` while the tab is visible (and once more when it becomes visible
 * again); `deps` restart it. A run never overlaps the previous one.
 * @param {() => Promise<unknown>} fn
 * @param {number} ms
 * @param {unknown[]} deps
 */
export function usePolling(fn, ms, deps) {
  const visible = useVisible();
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => {
    if (!visible) return undefined;
    let stopped = false;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    let timer;
    const tick = async () => {
      try {
        await latest.current();
      } catch {
        // The screen shows its own errors; polling goes on.
      } finally {
        if (!stopped) timer = setTimeout(tick, ms);
      }
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [visible, ms, ...deps]);
}

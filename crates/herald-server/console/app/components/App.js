// @ts-check
// The shell: header, token banner, the screen the hash route names, the user panels (kept
// mounted on every screen so their streams stay open) and the toasts.
import { html, useEffect } from '../html.js';
import { useRoute } from '../router.js';
import { Header } from './Header.js';
import { AuthBanner } from './AuthBanner.js';
import { TokenDialog } from './TokenDialog.js';
import { CreateBroadcast } from './CreateBroadcast.js';
import { ManageBroadcasts } from './ManageBroadcasts.js';
import { BroadcastStats } from './BroadcastStats.js';
import { Users } from './Users.js';
import { DeadLetters } from './DeadLetters.js';
import { UserPanels } from './UserPanels.js';
import { Toasts } from './Toasts.js';

/** @param {string[]} route */
function screen(route) {
  const [area, page, id] = route;
  if (area === 'users') return { title: 'User panels', view: null };
  if (area === 'admin' && page === 'broadcasts' && id) {
    return { title: `Broadcast #${id}`, view: html`<${BroadcastStats} key=${id} id=${id} />` };
  }
  if (area === 'admin' && page === 'broadcasts') return { title: 'Broadcasts', view: html`<${ManageBroadcasts} />` };
  if (area === 'admin' && page === 'users') return { title: 'Users', view: html`<${Users} />` };
  if (area === 'admin' && page === 'dead-letters') return { title: 'Dead letters', view: html`<${DeadLetters} />` };
  if (!area || (area === 'admin' && (!page || page === 'create'))) {
    return { title: 'New broadcast', view: html`<${CreateBroadcast} />` };
  }
  return { title: 'Not found', view: html`<section class="card"><h1>Not found</h1><p>No screen at <code>${location.hash}</code>. <a href="#/admin/create">Go to the console's start</a>.</p></section>` };
}

export function App() {
  const route = useRoute();
  const { title, view } = screen(route);
  useEffect(() => {
    document.title = `${title} · Herald`;
  }, [title]);
  return html`
    <${Header} route=${route} />
    <main id="main">
      <${AuthBanner} />
      ${view}
      <${UserPanels} active=${route[0] === 'users'} />
    </main>
    <${TokenDialog} />
    <${Toasts} />
  `;
}

// @ts-check
// The top bar: the screens, and the tab's token.
import { html } from '../html.js';
import { useAppState, setState } from '../state.js';
import { claims } from '../api.js';

/** Each screen: its link, its name, and whether a route is on it. @type {[string, string, (r: string[]) => boolean][]} */
const LINKS = [
  ['#/admin/create', 'New broadcast', (r) => r[0] !== 'users' && (!r[1] || r[1] === 'create')],
  ['#/admin/broadcasts', 'Broadcasts', (r) => r[1] === 'broadcasts'],
  ['#/admin/users', 'Users', (r) => r[1] === 'users'],
  ['#/admin/dead-letters', 'Dead letters', (r) => r[1] === 'dead-letters'],
  ['#/users', 'User panels', (r) => r[0] === 'users'],
];

/** @param {{route: string[]}} props */
export function Header({ route }) {
  const { token, jwt } = useAppState();
  const c = token ? claims(token) : null;
  const tokenLabel = token ? `Token: ${c?.sub ?? 'set'}` : jwt ? 'Token: none' : 'Token';
  return html`
    <header class="top">
      <a class="brand" href="#/admin/create" aria-label="Herald console, start">
        <span class="logo" aria-hidden="true"></span>Herald
      </a>
      <nav aria-label="Screens">
        <ul>
          ${LINKS.map(
            ([href, label, active]) => html`
              <li><a href=${href} aria-current=${active(route) ? 'page' : undefined}>${label}</a></li>
            `,
          )}
        </ul>
      </nav>
      <button type="button" class="btn ghost token-btn" onClick=${() => setState({ tokenDialog: true })}>${tokenLabel}</button>
    </header>
  `;
}

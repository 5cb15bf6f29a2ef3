// @ts-check
// The recipients of a SELECTED, ROLE or PRODUCT broadcast, picked from the user directory.
import { html, useState } from '../html.js';
import { tally } from '../directory.js';
import { num } from '../format.js';

const SHOWN = 200;

/** An element id for any name (names may hold spaces). @param {string} name */
const pickId = (name) => `pick-${encodeURIComponent(name).replace(/[^A-Za-z0-9_-]/g, '_')}`;

/**
 * @param {{users: import('../state.js').User[], loading: boolean, type: string, selected: string[],
 *   onChange: (ids: string[]) => void}} props
 */
export function TargetPicker({ users, loading, type, selected, onChange }) {
  const [query, setQuery] = useState('');
  const chosen = new Set(selected);
  /** @param {string} id @param {boolean} on */
  const toggle = (id, on) => onChange(on ? [...selected, id] : selected.filter((s) => s !== id));
  const q = query.trim().toLowerCase();
  /** @type {{name: string, detail: string}[]} */
  const options =
    type === 'SELECTED'
      ? users.map((u) => ({ name: u.userId, detail: [...u.roles, ...u.products].join(', ') }))
      : tally(users, type === 'ROLE' ? 'roles' : 'products').map((t) => ({ name: t.name, detail: `${num(t.count)} user${t.count === 1 ? '' : 's'}` }));
  const matching = options.filter((o) => !q || o.name.toLowerCase().includes(q) || o.detail.toLowerCase().includes(q));
  const noun = { SELECTED: 'users', ROLE: 'roles', PRODUCT: 'products' }[type] || 'items';
  const legend = { SELECTED: 'Users to send to', ROLE: 'Roles to send to', PRODUCT: 'Products to send to' }[type];
  return html`
    <fieldset class="picker">
      <legend>${legend}</legend>
      <label for="picker-search">Find ${noun}</label>
      <input id="picker-search" type="search" value=${query} onInput=${(/** @type {any} */ e) => setQuery(e.currentTarget.value)} />
      ${loading && html`<p class="hint">Loading the directory…</p>`}
      ${!loading && options.length === 0 && html`<p class="hint">The directory has no ${noun} yet.</p>`}
      <ul class="options">
        ${matching.slice(0, SHOWN).map(
          (o) => html`
            <li key=${o.name}>
              <input type="checkbox" id=${pickId(o.name)} checked=${chosen.has(o.name)}
                onChange=${(/** @type {any} */ e) => toggle(o.name, e.currentTarget.checked)} />
              <label for=${pickId(o.name)}>${o.name}</label>
              <span class="hint">${o.detail}</span>
            </li>
          `,
        )}
      </ul>
      ${matching.length > SHOWN && html`<p class="hint">${num(matching.length - SHOWN)} more match; refine the search.</p>`}
      <p class="hint" aria-live="polite">${selected.length} ${selected.length === 1 ? noun.slice(0, -1) : noun} chosen${selected.length ? `: ${selected.join(', ')}` : ''}</p>
    </fieldset>
  `;
}

// @ts-check
// User panels: simulated users side by side, each with its own stream. They stay mounted on
// every screen (hidden off this one) so streams, toasts and reconnects go on while you work.
import { html, useEffect, useState } from '../html.js';
import { useAppState, addPanel } from '../state.js';
import { loadDirectory } from '../directory.js';
import { UserPanel } from './UserPanel.js';

const USER_ID = /^[A-Za-z0-9._@:-]{1,128}$/;

/** @param {{active: boolean}} props */
export function UserPanels({ active }) {
  const { panels, users, token, authEpoch } = useAppState();
  const [userId, setUserId] = useState('');
  const [error, setError] = useState(/** @type {string|null} */ (null));
  useEffect(() => {
    // The directory only fills the picker; without admin rights, typing an id works too.
    if (active && (token || !users)) loadDirectory();
  }, [active, authEpoch]);
  /** @param {Event} e */
  const open = (e) => {
    e.preventDefault();
    const id = userId.trim();
    if (!USER_ID.test(id)) return setError('A user ID is 1–128 characters of letters, digits and . _ @ : -');
    setError(null);
    addPanel(id);
  };
  return html`
    <section class="panels-screen" hidden=${!active} aria-labelledby="panels-title">
      <div class="card">
        <div class="title-row">
          <h1 id="panels-title">User panels</h1>
          <form class="open-panel" onSubmit=${open}>
            <div class="field inline">
              <label for="panel-user">User ID</label>
              <input id="panel-user" list="panel-users" value=${userId} autocomplete="off" placeholder="user-002"
                onInput=${(/** @type {any} */ e) => setUserId(e.currentTarget.value)} />
              <datalist id="panel-users">${(users || []).map((u) => html`<option value=${u.userId}></option>`)}</datalist>
            </div>
            <button type="submit" class="btn primary">Open panel</button>
          </form>
        </div>
        ${error && html`<p class="error-text" role="alert">${error}</p>`}
        <p class="hint">Each panel is one user's connection: its live stream, inbox and unread count. Open the same
          user twice to watch reads travel between its streams.</p>
      </div>
      ${panels.length === 0 && html`<p class="empty">No panel open. Pick a user above.</p>`}
      <div class="panels">${panels.map((p) => html`<${UserPanel} key=${p.key} panel=${p} />`)}</div>
    </section>
  `;
}

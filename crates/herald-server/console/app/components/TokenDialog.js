// @ts-check
// The tab's admin token (auth = jwt): kept in sessionStorage, so it dies with the tab.
import { html, useEffect, useRef, useState } from '../html.js';
import { useAppState, setState, setToken } from '../state.js';
import { claims } from '../api.js';
import { when } from '../format.js';

export function TokenDialog() {
  const { tokenDialog, token } = useAppState();
  const ref = useRef(/** @type {HTMLDialogElement|null} */ (null));
  const [draft, setDraft] = useState(token);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (tokenDialog && !d.open) {
      setDraft(token);
      d.showModal();
    } else if (!tokenDialog && d.open) d.close();
  }, [tokenDialog]);
  const c = draft.trim() ? claims(draft.trim()) : null;
  const close = () => setState({ tokenDialog: false });
  /** @param {Event} e */
  const save = (e) => {
    e.preventDefault();
    setToken(draft);
    close();
  };
  return html`
    <dialog ref=${ref} class="dialog" aria-labelledby="token-title" onClose=${close}>
      <form onSubmit=${save}>
        <h2 id="token-title">Admin token</h2>
        <p class="hint">Only needed when the server runs with <code>auth = jwt</code>. The token stays in this tab
          (sessionStorage) and is sent as <code>Authorization: Bearer</code>. User panels take their own tokens.</p>
        <label for="admin-token">Token (JWT)</label>
        <textarea id="admin-token" rows="4" spellcheck="false" autocomplete="off" value=${draft}
          onInput=${(/** @type {any} */ e) => setDraft(e.currentTarget.value)}></textarea>
        ${draft.trim() &&
        html`<p class="hint" aria-live="polite">
          ${c
            ? `Subject ${c.sub ?? '?'}${c.exp ? `, expires ${when(new Date(c.exp * 1000).toISOString())}` : ''}${c.exp && c.exp * 1000 < Date.now() ? ' (already expired)' : ''}`
            : 'This does not look like a JWT.'}
        </p>`}
        <div class="actions">
          <button type="submit" class="btn primary">Save token</button>
          <button type="button" class="btn" onClick=${() => { setToken(''); close(); }}>Forget token</button>
          <button type="button" class="btn ghost" onClick=${close}>Cancel</button>
        </div>
      </form>
    </dialog>
  `;
}

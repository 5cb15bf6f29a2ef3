// @ts-check
// Short-lived notes (a new message in a user panel, a finished action), announced politely.
import { html } from '../html.js';
import { useAppState, dismissToast } from '../state.js';

export function Toasts() {
  const { toasts } = useAppState();
  return html`
    <div class="toasts" role="status" aria-live="polite" aria-label="Notifications">
      ${toasts.map(
        (t) => html`
          <div class=${`toast tone-${t.tone.toLowerCase()}`} key=${t.id}>
            <div><strong>${t.title}</strong><p>${t.body}</p></div>
            <button type="button" class="btn ghost small" aria-label="Dismiss notification" onClick=${() => dismissToast(t.id)}>×</button>
          </div>
        `,
      )}
    </div>
  `;
}

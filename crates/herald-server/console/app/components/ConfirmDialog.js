// @ts-check
// A modal confirmation for destructive actions; the safe choice has the focus.
import { html, useEffect, useId, useRef } from '../html.js';

/**
 * @param {{open: boolean, title: string, body: string, confirm: string,
 *   onConfirm: () => void, onCancel: () => void}} props
 */
export function ConfirmDialog({ open, title, body, confirm, onConfirm, onCancel }) {
  const ref = useRef(/** @type {HTMLDialogElement|null} */ (null));
  const id = useId();
  const keep = useRef(/** @type {HTMLButtonElement|null} */ (null));
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      d.showModal();
      keep.current?.focus();
    } else if (!open && d.open) d.close();
  }, [open]);
  return html`
    <dialog ref=${ref} class="dialog" aria-labelledby=${`${id}-title`} aria-describedby=${`${id}-body`}
      onClose=${() => open && onCancel()}>
      <h2 id=${`${id}-title`}>${title}</h2>
      <p id=${`${id}-body`}>${body}</p>
      <div class="actions">
        <button type="button" class="btn danger" onClick=${onConfirm}>${confirm}</button>
        <button type="button" class="btn" ref=${keep} onClick=${onCancel}>Keep it</button>
      </div>
    </dialog>
  `;
}

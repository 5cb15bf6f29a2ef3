// @ts-check
// One page of a broadcast's per-user delivery rows (GET …/deliveries with `limit` and `after`).
import { html, useEffect, useState } from '../html.js';
import { api, describe } from '../api.js';
import { clock } from '../format.js';
import { Pager } from './Pager.js';

const PAGE = 25;

/** @param {{id: string, epoch: number}} props  `epoch` changes when the counts moved */
export function DeliveryRows({ id, epoch }) {
  const [cursors, setCursors] = useState(/** @type {string[]} */ (['']));
  const [rows, setRows] = useState(/** @type {any[]|null} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const after = cursors[cursors.length - 1];
  useEffect(() => {
    let live = true;
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (after) q.set('after', after);
    api(`/api/admin/broadcasts/${encodeURIComponent(id)}/deliveries?${q}`)
      .then((r) => live && (setRows(r), setError(null)))
      .catch((e) => live && setError(describe(e)));
    return () => {
      live = false;
    };
  }, [id, after, epoch]);
  if (error) return html`<p class="error-text" role="alert">${error}</p>`;
  if (!rows) return html`<p class="hint">Loading…</p>`;
  return html`
    ${rows.length === 0
      ? html`<p class="empty">Nobody is in this broadcast's audience${cursors.length > 1 ? ' after this point' : ''}.</p>`
      : html`<div class="table-wrap">
          <table class="deliveries">
            <caption class="sr-only">Per-user delivery state</caption>
            <thead><tr><th scope="col">User</th><th scope="col">Delivery</th><th scope="col">Read</th>
              <th scope="col">Delivered at</th><th scope="col">Rendered at</th><th scope="col">Read at</th></tr></thead>
            <tbody>
              ${rows.map(
                (r) => html`<tr key=${r.userId}>
                  <td>${r.userId}</td>
                  <td><span class=${`badge delivery-${r.deliveryStatus.toLowerCase()}`}>${r.deliveryStatus}</span></td>
                  <td><span class=${`badge read-${r.readStatus.toLowerCase()}`}>${r.readStatus}</span></td>
                  <td>${clock(r.deliveredAt)}</td><td>${clock(r.renderedAt)}</td><td>${clock(r.readAt)}</td>
                </tr>`,
              )}
            </tbody>
          </table>
        </div>`}
    <${Pager} label="Delivery pages" hasPrev=${cursors.length > 1} hasNext=${rows.length === PAGE}
      summary=${`Page ${cursors.length}`}
      onPrev=${() => setCursors(cursors.slice(0, -1))}
      onNext=${() => setCursors([...cursors, rows[rows.length - 1].userId])} />
  `;
}

// @ts-check
// Admin: the broadcasts, filtered by status and paged, with counts that follow the server live
// (the page is polled every 2 s while the tab is visible) and cancel behind a confirmation.
import { html, useState } from '../html.js';
import { api, describe } from '../api.js';
import { useAppState, toast } from '../state.js';
import { usePolling } from '../hooks.js';
import { audience, clock, num, truncate, when } from '../format.js';
import { Badge } from './Badge.js';
import { Pager } from './Pager.js';
import { ConfirmDialog } from './ConfirmDialog.js';

const PAGE = 20;
const FILTERS = ['all', 'active', 'scheduled', 'expired', 'cancelled'];
/** The scheduled list is sorted by send time, not id, so `before` cannot page it: one long page. */
const SCHEDULED_PAGE = 500;

export function ManageBroadcasts() {
  const { authEpoch } = useAppState();
  const [filter, setFilter] = useState('all');
  /** Cursors of the pages before this one; the last is this page's `before`. */
  const [cursors, setCursors] = useState(/** @type {(number|null)[]} */ ([null]));
  const [rows, setRows] = useState(/** @type {any[]|null} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [updated, setUpdated] = useState(/** @type {Date|null} */ (null));
  const [cancelling, setCancelling] = useState(/** @type {any|null} */ (null));
  const before = cursors[cursors.length - 1];
  const limit = filter === 'scheduled' ? SCHEDULED_PAGE : PAGE;

  const load = async () => {
    const q = new URLSearchParams({ filter, limit: String(limit) });
    if (before !== null && filter !== 'scheduled') q.set('before', String(before));
    try {
      setRows(await api(`/api/admin/broadcasts?${q}`));
      setError(null);
      setUpdated(new Date());
    } catch (e) {
      setError(describe(e));
    }
  };
  usePolling(load, 2000, [filter, before, authEpoch]);

  /** @param {string} f */
  const changeFilter = (f) => {
    setFilter(f);
    setCursors([null]);
    setRows(null);
  };
  const confirmCancel = async () => {
    const b = cancelling;
    setCancelling(null);
    try {
      await api(`/api/admin/broadcasts/${b.id}`, { method: 'DELETE' });
      toast('Broadcast cancelled', `#${b.id} is cancelled; its recipients no longer see it.`);
      await load();
    } catch (e) {
      setError(describe(e));
    }
  };
  const full = rows !== null && rows.length === limit;

  return html`
    <section class="card" aria-labelledby="manage-title">
      <div class="title-row">
        <h1 id="manage-title">Broadcasts</h1>
        <div class="field inline">
          <label for="status-filter">Status</label>
          <select id="status-filter" value=${filter} onChange=${(/** @type {any} */ e) => changeFilter(e.currentTarget.value)}>
            ${FILTERS.map((f) => html`<option value=${f}>${f[0].toUpperCase() + f.slice(1)}</option>`)}
          </select>
        </div>
        <p class="hint live" aria-live="off">${updated ? `Live · updated ${clock(updated)}` : 'Loading…'}</p>
      </div>
      ${error && html`<p class="error-text" role="alert">${error}</p>`}
      ${rows && rows.length === 0 && html`<p class="empty">No ${filter === 'all' ? '' : `${filter} `}broadcasts${cursors.length > 1 ? ' on this page' : ''}.</p>`}
      ${rows && rows.length > 0 &&
      html`<div class="table-wrap">
        <table class="broadcasts">
          <caption class="sr-only">Broadcasts, newest first, with their counts</caption>
          <thead>
            <tr>
              <th scope="col">#</th><th scope="col">Message</th><th scope="col">Audience</th><th scope="col">Status</th>
              <th scope="col">Sent / scheduled</th><th scope="col" class="num">Targeted</th><th scope="col" class="num">Delivered</th>
              <th scope="col" class="num">Read</th><th scope="col"><span class="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            ${rows.map(
              (b) => html`
                <tr key=${b.id}>
                  <td data-label="#"><a href=${`#/admin/broadcasts/${b.id}`}>${b.id}</a></td>
                  <td class="content-cell" data-label="Message">
                    <a href=${`#/admin/broadcasts/${b.id}`}>${truncate(b.content, 80)}</a>
                    <div class="hint">${b.priority !== 'NORMAL' ? html`<${Badge} kind="priority" value=${b.priority} /> ` : ''}${b.category}${b.fireAndForget ? ' · fire-and-forget' : ''}</div>
                  </td>
                  <td data-label="Audience">${audience(b)}</td>
                  <td data-label="Status"><${Badge} value=${b.status} /></td>
                  <td data-label="Sent / scheduled">${when(b.scheduledAt || b.createdAt)}</td>
                  <td class="num" data-label="Targeted">${num(b.totalTargeted)}</td>
                  <td class="num" data-label="Delivered">${num(b.totalDelivered)}</td>
                  <td class="num" data-label="Read">${num(b.totalRead)}</td>
                  <td class="row-actions">
                    ${(b.status === 'ACTIVE' || b.status === 'SCHEDULED') &&
                    html`<button type="button" class="btn small danger" aria-label=${`Cancel broadcast ${b.id}`}
                      onClick=${() => setCancelling(b)}>Cancel</button>`}
                  </td>
                </tr>
              `,
            )}
          </tbody>
        </table>
      </div>`}
      ${filter === 'scheduled'
        ? full && html`<p class="hint">Showing the ${SCHEDULED_PAGE} soonest scheduled broadcasts.</p>`
        : html`<${Pager} label="Broadcast pages" hasPrev=${cursors.length > 1} hasNext=${full}
            summary=${`Page ${cursors.length}`}
            onPrev=${() => setCursors(cursors.slice(0, -1))}
            onNext=${() => rows && setCursors([...cursors, rows[rows.length - 1].id])} />`}
      <${ConfirmDialog}
        open=${cancelling !== null}
        title=${cancelling ? `Cancel broadcast #${cancelling.id}?` : ''}
        body="Its recipients stop seeing it at once (it leaves their inboxes). This cannot be undone."
        confirm="Cancel broadcast"
        onConfirm=${confirmCancel}
        onCancel=${() => setCancelling(null)}
      />
    </section>
  `;
}

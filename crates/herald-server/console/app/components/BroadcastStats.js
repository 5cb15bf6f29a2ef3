// @ts-check
// Admin: one broadcast's statistics: its fields, the four counts with rates (polled every 2 s
// while visible), deliveries and reads over time, and the per-user delivery rows.
import { html, useEffect, useRef, useState } from '../html.js';
import { api, describe } from '../api.js';
import { useAppState, toast } from '../state.js';
import { usePolling } from '../hooks.js';
import { audience, clock, num, pct, when } from '../format.js';
import { Badge } from './Badge.js';
import { ConfirmDialog } from './ConfirmDialog.js';
import { DeliveryChart } from './DeliveryChart.js';
import { DeliveryRows } from './DeliveryRows.js';

/** The chart reads every row, 1 000 at a time, up to this many. */
const CHART_PAGE = 1000;
const CHART_MAX = 20000;

/** @param {string} id @returns {Promise<{rows: any[], cut: boolean}>} */
async function allDeliveries(id) {
  const rows = [];
  let after = '';
  while (rows.length < CHART_MAX) {
    const q = new URLSearchParams({ limit: String(CHART_PAGE) });
    if (after) q.set('after', after);
    /** @type {any[]} */
    const page = await api(`/api/admin/broadcasts/${id}/deliveries?${q}`);
    rows.push(...page);
    if (page.length < CHART_PAGE) return { rows, cut: false };
    after = page[page.length - 1].userId;
  }
  return { rows, cut: true };
}

/** @param {{id: string}} props */
export function BroadcastStats({ id }) {
  const { authEpoch } = useAppState();
  const [b, setB] = useState(/** @type {any|null} */ (null));
  const [stats, setStats] = useState(/** @type {any|null} */ (null));
  const [chart, setChart] = useState(/** @type {{rows: any[], cut: boolean}|null} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [updated, setUpdated] = useState(/** @type {Date|null} */ (null));
  const [confirming, setConfirming] = useState(false);
  const [rowsEpoch, setRowsEpoch] = useState(0);
  const lastCounts = useRef('');

  const load = async () => {
    try {
      const [broadcast, s] = await Promise.all([
        api(`/api/admin/broadcasts/${encodeURIComponent(id)}`),
        api(`/api/admin/broadcasts/${encodeURIComponent(id)}/stats`),
      ]);
      setB(broadcast);
      setStats(s);
      setError(null);
      setUpdated(new Date());
      // The rows (and the chart) are re-read only when a count moved.
      const counts = JSON.stringify([s.totalTargeted, s.totalDelivered, s.totalRendered, s.totalRead, broadcast.status]);
      if (counts !== lastCounts.current) {
        lastCounts.current = counts;
        setChart(await allDeliveries(id));
        setRowsEpoch((n) => n + 1);
      }
    } catch (e) {
      setError(describe(e));
    }
  };
  usePolling(load, 2000, [id, authEpoch]);
  useEffect(() => {
    lastCounts.current = '';
  }, [id]);

  const cancel = async () => {
    setConfirming(false);
    try {
      await api(`/api/admin/broadcasts/${b.id}`, { method: 'DELETE' });
      toast('Broadcast cancelled', `#${b.id} is cancelled.`);
      await load();
    } catch (e) {
      setError(describe(e));
    }
  };

  if (!b) {
    return html`<section class="card"><h1>Broadcast #${id}</h1>
      ${error ? html`<p class="error-text" role="alert">${error}</p>` : html`<p class="hint">Loading…</p>`}</section>`;
  }
  const s = stats || b;
  const renderedRate = s.totalTargeted ? s.totalRendered / s.totalTargeted : 0;
  return html`
    <section class="card" aria-labelledby="stats-title">
      <p class="crumbs"><a href="#/admin/broadcasts">Broadcasts</a> ›</p>
      <div class="title-row">
        <h1 id="stats-title">Broadcast #${b.id}</h1>
        <${Badge} value=${b.status} />
        ${b.priority !== 'NORMAL' && html`<${Badge} kind="priority" value=${b.priority} />`}
        <p class="hint live">${updated ? `Live · updated ${clock(updated)}` : ''}</p>
        ${(b.status === 'ACTIVE' || b.status === 'SCHEDULED') &&
        html`<button type="button" class="btn danger" onClick=${() => setConfirming(true)}>Cancel broadcast</button>`}
      </div>
      ${error && html`<p class="error-text" role="alert">${error}</p>`}
      <blockquote class="message-body">${b.content}</blockquote>
      <dl class="facts">
        <div><dt>From</dt><dd>${b.senderName} (${b.senderId})</dd></div>
        <div><dt>Audience</dt><dd>${audience(b)}</dd></div>
        <div><dt>Category</dt><dd>${b.category}${b.fireAndForget ? ' · fire-and-forget' : ''}</dd></div>
        <div><dt>Created</dt><dd>${when(b.createdAt)}</dd></div>
        ${b.scheduledAt && html`<div><dt>Scheduled</dt><dd>${when(b.scheduledAt)}</dd></div>`}
        <div><dt>Expires</dt><dd>${b.expiresAt ? when(b.expiresAt) : 'never'}</dd></div>
      </dl>
      <ul class="stat-cards" aria-label="Counts">
        <li><span class="stat-label">Targeted</span><span class="stat-value">${num(s.totalTargeted)}</span><span class="hint">users in the audience</span></li>
        <li><span class="stat-label">Delivered</span><span class="stat-value">${num(s.totalDelivered)}</span><span class="hint">${stats ? `${pct(stats.deliveryRate)} delivery rate` : ''}</span></li>
        <li><span class="stat-label">Rendered</span><span class="stat-value">${num(s.totalRendered)}</span><span class="hint">${pct(renderedRate)} of targeted seen on screen</span></li>
        <li><span class="stat-label">Read</span><span class="stat-value">${num(s.totalRead)}</span><span class="hint">${stats ? `${pct(stats.readRate)} of delivered · ${pct(stats.readRateOfTargeted ?? 0)} of targeted` : ''}</span></li>
      </ul>
      <h2>Deliveries and reads over time</h2>
      ${chart
        ? html`<${DeliveryChart} rows=${chart.rows} start=${b.scheduledAt || b.createdAt} targeted=${s.totalTargeted} />
            ${chart.cut && html`<p class="hint">The chart shows the first ${num(CHART_MAX)} users of the audience.</p>`}`
        : html`<p class="hint">Loading…</p>`}
      <h2>Per-user deliveries</h2>
      <${DeliveryRows} id=${id} epoch=${rowsEpoch} />
      <${ConfirmDialog}
        open=${confirming}
        title=${`Cancel broadcast #${b.id}?`}
        body="Its recipients stop seeing it at once (it leaves their inboxes). This cannot be undone."
        confirm="Cancel broadcast"
        onConfirm=${cancel}
        onCancel=${() => setConfirming(false)}
      />
    </section>
  `;
}

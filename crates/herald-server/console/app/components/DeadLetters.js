// @ts-check
// Admin: dead-lettered bus events (cluster mode, Kafka bus): list, redrive, purge, one or all.
// With the in-process bus the list is always empty. A server without the routes (an older Herald)
// neither lists them in its OpenAPI document nor answers them (404); the screen says so.
import { html, useEffect, useState } from '../html.js';
import { api, apiRoutes, describe, ApiError } from '../api.js';
import { useAppState, toast } from '../state.js';
import { when } from '../format.js';
import { ConfirmDialog } from './ConfirmDialog.js';

const NONE = 'Dead letters are kept by the Kafka bus; this server has none.';

/** @typedef {{id: string|number, broadcastId: number|null, correlationId: string|null, originalKey: string|null,
 *   originalTopic: string, originalPartition: number, originalOffset: number, exceptionMessage: string,
 *   exceptionStackTrace: string|null, failedAt: string, originalMessagePayload: string|null}} DeadLetter */

export function DeadLetters() {
  const { authEpoch } = useAppState();
  const [items, setItems] = useState(/** @type {DeadLetter[]|null} */ (null));
  const [absent, setAbsent] = useState(false);
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [result, setResult] = useState(/** @type {any|null} */ (null));
  const [confirm, setConfirm] = useState(/** @type {{title: string, body: string, label: string, run: () => Promise<void>}|null} */ (null));

  const load = async () => {
    try {
      if (!(await apiRoutes()).has('/api/admin/dlt/messages')) return setAbsent(true);
      setItems(await api('/api/admin/dlt/messages'));
      setError(null);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) setAbsent(true);
      else setError(describe(e));
    }
  };
  useEffect(() => {
    load();
  }, [authEpoch]);

  /** @param {string} label @param {() => Promise<any>} call */
  const act = async (label, call) => {
    try {
      const r = await call();
      toast(label, 'Done.');
      if (r && typeof r === 'object' && 'totalMessages' in r) setResult(r);
    } catch (e) {
      setError(describe(e));
    }
    await load();
  };
  /** @param {DeadLetter} d */
  const redrive = (d) => act(`Redrove ${d.id}`, () => api(`/api/admin/dlt/redrive/${encodeURIComponent(String(d.id))}`, { method: 'POST' }));
  /** @param {DeadLetter} d */
  const purge = (d) =>
    setConfirm({
      title: `Purge dead letter ${d.id}?`,
      body: 'The event is deleted and never delivered.',
      label: 'Purge',
      run: () => act(`Purged ${d.id}`, () => api(`/api/admin/dlt/purge/${encodeURIComponent(String(d.id))}`, { method: 'DELETE' })),
    });
  const purgeAll = () =>
    setConfirm({
      title: 'Purge every dead letter?',
      body: 'All dead-lettered events are deleted and never delivered.',
      label: 'Purge all',
      run: () => act('Purged all dead letters', () => api('/api/admin/dlt/purge-all', { method: 'DELETE' })),
    });

  let body;
  if (absent) body = html`<p class="empty">${NONE}</p>`;
  else if (error) body = html`<p class="error-text" role="alert">${error}</p>`;
  else if (!items) body = html`<p class="hint">Loading…</p>`;
  else if (items.length === 0) body = html`<p class="empty">No dead letters: every event reached its consumers.</p>`;
  else {
    body = html`<ul class="dead-letters">
      ${items.map(
        (d) => html`<li key=${d.id} class="dead-letter">
          <div class="title-row">
            <strong>${d.id}</strong>
            <span class="hint">broadcast ${d.broadcastId ?? '—'} · ${d.originalTopic}[${d.originalPartition}]@${d.originalOffset} · failed ${when(d.failedAt)}</span>
            <button type="button" class="btn small" aria-label=${`Redrive ${d.id}`} onClick=${() => redrive(d)}>Redrive</button>
            <button type="button" class="btn small danger" aria-label=${`Purge ${d.id}`} onClick=${() => purge(d)}>Purge</button>
          </div>
          <p>${d.exceptionMessage}</p>
          <details>
            <summary>Details</summary>
            <dl class="facts">
              <div><dt>Correlation ID</dt><dd>${d.correlationId ?? '—'}</dd></div>
              <div><dt>Key</dt><dd>${d.originalKey ?? '—'}</dd></div>
            </dl>
            ${d.exceptionStackTrace && html`<pre>${d.exceptionStackTrace}</pre>`}
            ${d.originalMessagePayload && html`<pre>${d.originalMessagePayload}</pre>`}
          </details>
        </li>`,
      )}
    </ul>`;
  }
  return html`
    <section class="card" aria-labelledby="dlt-title">
      <div class="title-row">
        <h1 id="dlt-title">Dead letters</h1>
        ${items && items.length > 0 &&
        html`<button type="button" class="btn" onClick=${() => act('Redrive all', () => api('/api/admin/dlt/redrive-all', { method: 'POST' }))}>Redrive all</button>
          <button type="button" class="btn danger" onClick=${purgeAll}>Purge all</button>`}
      </div>
      ${result &&
      html`<div class=${`notice ${result.failureCount ? 'warn' : 'ok'}`} role="status">
        <p>Redrive all: ${result.successCount} of ${result.totalMessages} redriven, ${result.failureCount} failed.</p>
        ${result.failures?.length > 0 && html`<ul>${result.failures.map((/** @type {any} */ f) => html`<li>${f.dltMessageId}: ${f.reason}</li>`)}</ul>`}
      </div>`}
      ${body}
      <${ConfirmDialog}
        open=${confirm !== null}
        title=${confirm?.title ?? ''}
        body=${confirm?.body ?? ''}
        confirm=${confirm?.label ?? ''}
        onConfirm=${() => {
          const c = confirm;
          setConfirm(null);
          c?.run();
        }}
        onCancel=${() => setConfirm(null)}
      />
    </section>
  `;
}

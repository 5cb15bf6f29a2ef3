// @ts-check
// One simulated user: stream state with the last event id, unread count, inbox with mark read
// and read all, and (auth = jwt) the user's own token.
import { html, useEffect, useMemo, useReducer, useState } from '../html.js';
import { UserStream } from '../stream.js';
import { removePanel, setPanelToken } from '../state.js';
import { clock } from '../format.js';
import { MessageItem } from './MessageItem.js';

const STATUS_TEXT = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', closed: 'Closed' };

/** @param {{panel: import('../state.js').Panel}} props */
export function UserPanel({ panel }) {
  const stream = useMemo(() => new UserStream(panel.userId, panel.token), [panel.key]);
  const [, bump] = useReducer((n) => n + 1, 0);
  const [draft, setDraft] = useState(panel.token);
  useEffect(() => {
    const off = stream.subscribe(bump);
    stream.start();
    return () => {
      off();
      stream.dispose();
    };
  }, [stream]);
  const v = stream.view;
  const name = `${panel.userId} panel ${panel.key}`;
  /** @param {Event} e */
  const saveToken = (e) => {
    e.preventDefault();
    setPanelToken(panel.key, draft);
    stream.setToken(draft.trim());
  };
  return html`
    <section class="card panel" aria-label=${name}>
      <header class="panel-head">
        <h2>${panel.userId} <span class="hint">#${panel.key}</span></h2>
        <button type="button" class="btn ghost small" aria-label=${`Close ${name}`} onClick=${() => removePanel(panel.key)}>×</button>
      </header>
      <div class="panel-state">
        <span class=${`state state-${v.status}`} role="status" aria-label=${`Stream ${STATUS_TEXT[v.status]}`}>${STATUS_TEXT[v.status]}</span>
        <span class="hint">last event id <span class="event-id">${v.lastEventId ?? '—'}</span></span>
        ${v.heartbeat && html`<span class="hint">heartbeat ${clock(v.heartbeat)}</span>`}
        ${v.unread !== null && html`<span class="unread" aria-live="polite">${v.unread} unread</span>`}
      </div>
      ${v.notice && html`<p class=${`notice ${v.notice.tone}`} role=${v.notice.tone === 'info' ? 'status' : 'alert'}>${v.notice.text}</p>`}
      ${v.needsToken &&
      html`<form class="panel-token" onSubmit=${saveToken}>
        <label for=${`token-${panel.key}`}>Token for ${panel.userId}</label>
        <input id=${`token-${panel.key}`} value=${draft} spellcheck="false" autocomplete="off"
          onInput=${(/** @type {any} */ e) => setDraft(e.currentTarget.value)} />
        <button type="submit" class="btn small primary">Use token</button>
      </form>`}
      <div class="actions">
        <button type="button" class="btn small" onClick=${() => stream.readAll()} disabled=${v.messages.length === 0}>Read all</button>
        ${v.status === 'closed'
          ? html`<button type="button" class="btn small" onClick=${() => stream.reconnect()}>Reconnect</button>`
          : html`<button type="button" class="btn small" onClick=${() => stream.disconnect()}>Disconnect</button>`}
      </div>
      ${v.inboxError && !v.needsToken && html`<p class="error-text" role="alert">Inbox: ${v.inboxError}</p>`}
      <ul class="inbox" aria-label=${`Inbox of ${name}`}>
        ${v.messages.map((m) => html`<${MessageItem} key=${m.broadcastId} message=${m} stream=${stream} />`)}
      </ul>
      ${v.messages.length === 0 && !v.loading && html`<p class="empty small">No unread messages.</p>`}
      ${v.hasMore && html`<button type="button" class="btn small" onClick=${() => stream.loadInbox(true)}>Load older</button>`}
    </section>
  `;
}

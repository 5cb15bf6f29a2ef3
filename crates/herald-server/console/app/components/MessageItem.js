// @ts-check
// One inbox message. It acknowledges visibility once, when at least half of it is on screen
// in a visible tab (IntersectionObserver), which sets the user's renderedAt.
import { html, useEffect, useRef, useState } from '../html.js';
import { useVisible } from '../hooks.js';
import { when } from '../format.js';
import { Badge } from './Badge.js';

/** @param {{message: import('../stream.js').Message, stream: import('../stream.js').UserStream}} props */
export function MessageItem({ message: m, stream }) {
  const ref = useRef(/** @type {HTMLLIElement|null} */ (null));
  const [onScreen, setOnScreen] = useState(false);
  const visible = useVisible();
  useEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    const io = new IntersectionObserver(([entry]) => setOnScreen(entry.isIntersecting), { threshold: 0.5 });
    io.observe(el);
    return () => io.disconnect();
  }, []);
  useEffect(() => {
    if (onScreen && visible) stream.ack(m);
  }, [onScreen, visible]);
  return html`
    <li ref=${ref} class=${`message tone-${m.priority.toLowerCase()}`} aria-label=${`Message ${m.broadcastId}`}>
      <div class="message-meta">
        ${m.priority !== 'NORMAL' && html`<${Badge} kind="priority" value=${m.priority} />`}
        <span>${m.category}</span>
        <span class="hint">#${m.broadcastId} · ${m.senderName} · ${when(m.broadcastCreatedAt)}</span>
      </div>
      <p class="message-text">${m.content}</p>
      ${m.expiresAt && html`<p class="hint">Expires ${when(m.expiresAt)}</p>`}
      <div class="actions">
        ${m.fireAndForget
          ? html`<span class="hint">Fire-and-forget: not kept in the inbox</span>
              <button type="button" class="btn small" onClick=${() => stream.dismiss(m)}>Dismiss</button>`
          : html`<button type="button" class="btn small" onClick=${() => stream.markRead(m)}>Mark read</button>`}
      </div>
    </li>
  `;
}

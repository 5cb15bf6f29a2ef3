// @ts-check
// The answer to a create: the new broadcast, its audience, and the server's warnings if any.
import { html } from '../html.js';
import { num, when } from '../format.js';

/** @param {{sent: {b: any, warnings: string[]}}} props */
export function SentNote({ sent: { b, warnings } }) {
  return html`
    <div class=${`notice ${warnings.length > 0 ? 'warn' : 'ok'}`} role="status">
      <p>
        Broadcast <a href=${`#/admin/broadcasts/${b.id}`}>#${b.id}</a>
        ${b.status === 'SCHEDULED' ? ` scheduled for ${when(b.scheduledAt)}` : ' sent'}${`: audience ${num(b.totalTargeted)} user${b.totalTargeted === 1 ? '' : 's'}. `}
        <a href=${`#/admin/broadcasts/${b.id}`}>See its statistics</a>.
      </p>
      ${warnings.length > 0 &&
      html`<div class="warnings" role="alert"><strong>The server warns:</strong>
        <ul>${warnings.map((w) => html`<li>${w}</li>`)}</ul></div>`}
    </div>
  `;
}

// @ts-check
// Previous / next buttons for cursor paging.
import { html } from '../html.js';

/**
 * @param {{label: string, hasPrev: boolean, hasNext: boolean, onPrev: () => void, onNext: () => void,
 *   summary?: string}} props
 */
export function Pager({ label, hasPrev, hasNext, onPrev, onNext, summary }) {
  return html`
    <nav class="pager" aria-label=${label}>
      <button type="button" class="btn small" disabled=${!hasPrev} onClick=${onPrev}>Previous</button>
      ${summary && html`<span class="hint">${summary}</span>`}
      <button type="button" class="btn small" disabled=${!hasNext} onClick=${onNext}>Next</button>
    </nav>
  `;
}

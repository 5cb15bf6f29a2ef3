// @ts-check
// A status or priority as a coloured label.
import { html } from '../html.js';

/** @param {{value: string, kind?: string}} props */
export function Badge({ value, kind = 'status' }) {
  return html`<span class=${`badge ${kind}-${String(value).toLowerCase()}`}>${value}</span>`;
}

// @ts-check
// Deliveries, renders and reads over time, as cumulative step lines in inline SVG, drawn from
// the per-user delivery rows (each row's deliveredAt, renderedAt and readAt).
import { html, useId } from '../html.js';
import { clock, num } from '../format.js';

const W = 640;
const H = 240;
const M = { left: 48, right: 16, top: 12, bottom: 30 };
const SERIES = /** @type {const} */ ([
  ['Delivered', 'deliveredAt', 'delivered'],
  ['Rendered', 'renderedAt', 'rendered'],
  ['Read', 'readAt', 'read'],
]);

/** @param {{rows: any[], start: string, targeted: number}} props */
export function DeliveryChart({ rows, start, targeted }) {
  const id = useId();
  const series = SERIES.map(([label, key, cls]) => ({
    label,
    cls,
    times: rows.map((r) => r[key]).filter(Boolean).map((t) => Date.parse(t)).sort((a, b) => a - b),
  }));
  const all = series.flatMap((s) => s.times);
  if (all.length === 0) return html`<p class="empty">Nothing delivered yet.</p>`;
  const t0 = Math.min(Date.parse(start) || Infinity, all.reduce((a, b) => Math.min(a, b)));
  const t1 = Math.max(all.reduce((a, b) => Math.max(a, b)), t0 + 1000);
  const yMax = Math.max(targeted, ...series.map((s) => s.times.length), 1);
  const x = (/** @type {number} */ t) => M.left + ((t - t0) / (t1 - t0)) * (W - M.left - M.right);
  const y = (/** @type {number} */ n) => H - M.bottom - (n / yMax) * (H - M.top - M.bottom);
  /** @param {number[]} times */
  const path = (times) => {
    let d = `M${x(t0).toFixed(1)},${y(0).toFixed(1)}`;
    times.forEach((t, i) => {
      d += `H${x(t).toFixed(1)}V${y(i + 1).toFixed(1)}`;
    });
    return `${d}H${x(t1).toFixed(1)}`;
  };
  const yTicks = [...new Set([0, Math.round(yMax / 2), yMax])];
  const xTicks = [t0, (t0 + t1) / 2, t1];
  const summary = series.map((s) => `${s.times.length} ${s.label.toLowerCase()}`).join(', ');
  return html`
    <figure class="chart">
      <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-labelledby=${`${id}-t`} preserveAspectRatio="xMidYMid meet">
        <title id=${`${id}-t`}>${`Cumulative counts from ${clock(t0)} to ${clock(t1)}: ${summary} of ${targeted} targeted`}</title>
        ${yTicks.map(
          (n) => html`<g key=${`y${n}`}>
            <line class="grid-line" x1=${M.left} x2=${W - M.right} y1=${y(n)} y2=${y(n)} />
            <text class="tick" x=${M.left - 6} y=${y(n) + 4} text-anchor="end">${num(n)}</text>
          </g>`,
        )}
        ${xTicks.map(
          (t, i) => html`<text key=${`x${i}`} class="tick" x=${x(t)} y=${H - 10}
            text-anchor=${i === 0 ? 'start' : i === 2 ? 'end' : 'middle'}>${clock(t)}</text>`,
        )}
        <line class="axis" x1=${M.left} x2=${M.left} y1=${M.top} y2=${H - M.bottom} />
        <line class="axis" x1=${M.left} x2=${W - M.right} y1=${H - M.bottom} y2=${H - M.bottom} />
        ${series.map((s) => html`<path key=${s.cls} class=${`line ${s.cls}`} d=${path(s.times)} />`)}
      </svg>
      <figcaption class="legend">
        ${series.map((s) => html`<span key=${s.cls}><i class=${`swatch ${s.cls}`}></i>${s.label}: ${num(s.times.length)}</span>`)}
        <span class="hint">of ${num(targeted)} targeted</span>
      </figcaption>
    </figure>
  `;
}

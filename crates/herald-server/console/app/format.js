// @ts-check
// Formatting shared by the screens: times, rates, character counts.

export const CONTENT_LIMIT = 10000;

const numberFormat = new Intl.NumberFormat('en');
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const shortTime = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** @param {number} n */
export const num = (n) => numberFormat.format(n);

/** @param {string|null|undefined} iso */
export function when(iso) {
  return iso ? timeFormat.format(new Date(iso)) : '—';
}

/** @param {string|number|Date|null|undefined} t */
export function clock(t) {
  return t ? shortTime.format(new Date(t)) : '—';
}

/** @param {number} rate a fraction in 0..1 */
export function pct(rate) {
  return `${Math.round(rate * 1000) / 10}%`;
}

/** Characters as the server counts them (Unicode scalar values). @param {string} s */
export function chars(s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** A local `datetime-local` value to an RFC 3339 UTC string, or null. @param {string} value */
export function localToIso(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** @param {string} s @param {number} n */
export function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** The audience of a broadcast as words. @param {{targetType: string, targetIds: string[]}} b */
export function audience(b) {
  if (b.targetType === 'ALL') return 'Everyone';
  const noun = { SELECTED: 'Users', ROLE: 'Roles', PRODUCT: 'Products' }[b.targetType] || b.targetType;
  return `${noun}: ${b.targetIds.join(', ')}`;
}

/** Names typed as a list ("ADMIN, USER"): trimmed, deduplicated. @param {string} s */
export const splitNames = (s) => [...new Set(s.split(/[,;]/).map((n) => n.trim()).filter(Boolean))];

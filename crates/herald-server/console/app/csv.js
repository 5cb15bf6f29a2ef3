// @ts-check
// The user import format: CSV `userId,roles,products`, `;` between names inside a cell, an
// optional header line, quotes as in RFC 4180.

const USER_ID = /^[A-Za-z0-9._@:-]{1,128}$/;

/**
 * @typedef {{line: number, userId: string, roles: string[], products: string[]}} ImportRow
 * @typedef {{line: number, reason: string}} Rejected
 */

/** Splits one CSV line into cells. @param {string} line @returns {string[]} */
export function cells(line) {
  /** @type {string[]} */
  const out = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cell);
      cell = '';
    } else cell += c;
  }
  out.push(cell);
  return out;
}

/** @param {string|undefined} cell */
const names = (cell) => [...new Set((cell || '').split(';').map((s) => s.trim()).filter(Boolean))].sort();

/**
 * Parses an import file. Line numbers count from 1, as an editor shows them.
 * @param {string} text
 * @returns {{rows: ImportRow[], rejected: Rejected[]}}
 */
export function parseUsersCsv(text) {
  /** @type {ImportRow[]} */
  const rows = [];
  /** @type {Rejected[]} */
  const rejected = [];
  const seen = new Map();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim() || raw.trim().startsWith('#')) return;
    const [id = '', roles, products, ...extra] = cells(raw);
    const userId = id.trim();
    if (line === 1 && userId.toLowerCase() === 'userid') return;
    if (extra.some((c) => c.trim())) rejected.push({ line, reason: 'more than three columns' });
    else if (!USER_ID.test(userId)) rejected.push({ line, reason: `'${userId}' is not a valid user id` });
    else if (seen.has(userId)) rejected.push({ line, reason: `${userId} already appears on line ${seen.get(userId)}` });
    else {
      seen.set(userId, line);
      rows.push({ line, userId, roles: names(roles), products: names(products) });
    }
  });
  return { rows, rejected };
}

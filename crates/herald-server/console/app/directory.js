// @ts-check
// The user directory as the admin screens see it: every user (paged from GET /api/admin/users),
// the roles and products derived from them, and the audience estimate shown before sending.
import { api, describe } from './api.js';
import { getState, setState } from './state.js';

const PAGE = 1000;

/** @typedef {import('./state.js').User} User */

/** Fetches the whole directory, a page at a time. @returns {Promise<User[]>} */
export async function fetchAllUsers() {
  /** @type {User[]} */
  const all = [];
  let after = '';
  for (;;) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (after) q.set('after', after);
    /** @type {User[]} */
    const page = await api(`/api/admin/users?${q}`);
    all.push(...page);
    if (page.length < PAGE) return all;
    after = page[page.length - 1].userId;
  }
}

/** Loads the directory into the shared state (once, or again with `force`). @param {boolean} [force] */
export async function loadDirectory(force = false) {
  const s = getState();
  if (s.usersLoading || (s.users && !force)) return;
  setState({ usersLoading: true });
  try {
    setState({ users: await fetchAllUsers(), usersError: null, usersLoading: false });
  } catch (e) {
    setState({ usersError: describe(e), usersLoading: false });
  }
}

/**
 * Each role (or product) with the number of users holding it, sorted by name.
 * @param {User[]} users @param {'roles'|'products'} field
 * @returns {{name: string, count: number}[]}
 */
export function tally(users, field) {
  /** @type {Map<string, number>} */
  const counts = new Map();
  for (const u of users) for (const n of u[field]) counts.set(n, (counts.get(n) || 0) + 1);
  return [...counts].map(([name, count]) => ({ name, count })).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * How many users a broadcast would reach now, by the directory. The server decides membership
 * when it delivers, so this is an estimate.
 * @param {User[]} users @param {string} targetType @param {string[]} ids
 */
export function estimateAudience(users, targetType, ids) {
  const wanted = new Set(ids);
  // Role and product names match ignoring case, as on the server.
  const names = new Set(ids.map(fold));
  switch (targetType) {
    case 'ALL':
      return users.length;
    case 'SELECTED':
      return wanted.size;
    case 'ROLE':
      return users.filter((u) => u.roles.some((r) => names.has(fold(r)))).length;
    case 'PRODUCT':
      return users.filter((u) => u.products.some((p) => names.has(fold(p)))).length;
    default:
      return 0;
  }
}

/** A role or product name with A–Z lowered: the server's comparison. @param {string} name */
function fold(name) {
  return name.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

// @ts-check
// Talking to Herald: JSON over fetch with the tab's token, errors as ApiError carrying the
// server's message. Admin calls report 401/403 to the shared state, which shows the token banner.
import { getState, setAuthProblem } from './state.js';

export class ApiError extends Error {
  /** @param {number} status @param {string} message @param {boolean} invalidToken */
  constructor(status, message, invalidToken = false) {
    super(message);
    this.status = status;
    this.invalidToken = invalidToken;
  }
}

/**
 * @typedef {{method?: string, body?: unknown, token?: string, admin?: boolean}} RequestOptions
 */

/**
 * Calls the API. `token` overrides the tab's admin token (user panels pass their own);
 * `admin: false` keeps 401/403 from touching the admin token banner.
 * @param {string} path
 * @param {RequestOptions} [options]
 * @returns {Promise<any>}
 */
export async function api(path, options = {}) {
  const { method = 'GET', body, admin = true } = options;
  const token = options.token !== undefined ? options.token : getState().token;
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `The server cannot be reached (${e instanceof Error ? e.message : e}).`);
  }
  const text = res.status === 204 ? '' : await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const message = data && typeof data === 'object' && data.message ? String(data.message) : res.statusText;
    const invalid = /error="invalid_token"/.test(res.headers.get('WWW-Authenticate') || '');
    const err = new ApiError(res.status, message, invalid);
    if (admin) reportAuth(err, Boolean(token));
    throw err;
  }
  if (admin && getState().authProblem) setAuthProblem(null);
  return data;
}

/** @param {ApiError} err @param {boolean} hadToken */
function reportAuth(err, hadToken) {
  if (err.status === 401) {
    const kind = err.invalidToken || hadToken ? 'invalid' : 'missing';
    setAuthProblem({ kind, message: err.message });
  } else if (err.status === 403) {
    setAuthProblem({ kind: 'forbidden', message: err.message });
  }
}

/** A user-facing sentence for an error. @param {unknown} e */
export function describe(e) {
  if (e instanceof ApiError) {
    if (e.status === 401) return `Not signed in: ${e.message}`;
    if (e.status === 403) return `Not allowed: ${e.message}`;
    if (e.status === 0) return e.message;
    return `${e.message} (HTTP ${e.status})`;
  }
  return e instanceof Error ? e.message : String(e);
}

/**
 * The claims of a JWT, read without checking it (the server checks); null if it is not one.
 * @param {string} token
 * @returns {{sub?: string, exp?: number, roles?: unknown} | null}
 */
export function claims(token) {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
  } catch {
    return null;
  }
}

let routesPromise = /** @type {Promise<Set<string>>|null} */ (null);

/** The API's routes, from its OpenAPI document (fetched once). @returns {Promise<Set<string>>} */
export function apiRoutes() {
  routesPromise ??= fetch('/api/openapi.json')
    .then((r) => (r.ok ? r.json() : { paths: {} }))
    .then((doc) => new Set(Object.keys(doc.paths || {})))
    .catch(() => new Set());
  return routesPromise;
}

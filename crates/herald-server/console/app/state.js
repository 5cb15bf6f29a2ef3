// @ts-check
// The console's one shared state: the admin token and what the server said about it, the user
// directory, toasts and the open user panels. Components read it with useAppState(); everything
// else (a form's fields, a page of rows) stays in the component that shows it.
// Tokens and panels live in sessionStorage: they belong to this tab only.
import { useEffect, useReducer } from './html.js';

/**
 * @typedef {{kind: 'missing'|'invalid'|'forbidden', message: string}} AuthProblem
 * @typedef {{userId: string, roles: string[], products: string[]}} User
 * @typedef {{key: number, userId: string, token: string}} Panel
 * @typedef {{id: number, title: string, body: string, tone: string}} Toast
 * @typedef {{
 *   token: string,
 *   jwt: boolean,
 *   authProblem: AuthProblem|null,
 *   authEpoch: number,
 *   tokenDialog: boolean,
 *   users: User[]|null,
 *   usersError: string|null,
 *   usersLoading: boolean,
 *   toasts: Toast[],
 *   panels: Panel[],
 * }} AppState
 */

const TOKEN_KEY = 'herald.token';
const PANELS_KEY = 'herald.panels';

/** @returns {Panel[]} */
function storedPanels() {
  try {
    const raw = JSON.parse(sessionStorage.getItem(PANELS_KEY) || '[]');
    return Array.isArray(raw) ? raw.filter((p) => p && typeof p.userId === 'string') : [];
  } catch {
    return [];
  }
}

/** @type {AppState} */
let state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  jwt: Boolean(sessionStorage.getItem(TOKEN_KEY)),
  authProblem: null,
  authEpoch: 0,
  tokenDialog: false,
  users: null,
  usersError: null,
  usersLoading: false,
  toasts: [],
  panels: storedPanels(),
};

/** @type {Set<() => void>} */
const listeners = new Set();

/** @returns {AppState} */
export function getState() {
  return state;
}

/** @param {Partial<AppState> | ((s: AppState) => Partial<AppState>)} patch */
export function setState(patch) {
  const next = typeof patch === 'function' ? patch(state) : patch;
  state = { ...state, ...next };
  if ('panels' in next) sessionStorage.setItem(PANELS_KEY, JSON.stringify(state.panels));
  listeners.forEach((f) => f());
}

/** Re-renders the calling component whenever the state changes. @returns {AppState} */
export function useAppState() {
  const [, bump] = useReducer((n) => n + 1, 0);
  useEffect(() => {
    listeners.add(bump);
    return () => {
      listeners.delete(bump);
    };
  }, []);
  return state;
}

/** @param {string} token */
export function setToken(token) {
  const t = token.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
  setState((s) => ({ token: t, jwt: s.jwt || Boolean(t), authProblem: null, authEpoch: s.authEpoch + 1, users: null }));
}

/** @param {AuthProblem|null} problem */
export function setAuthProblem(problem) {
  if (problem === state.authProblem) return;
  if (problem && state.authProblem && problem.kind === state.authProblem.kind && problem.message === state.authProblem.message) return;
  setState({ authProblem: problem, jwt: state.jwt || Boolean(problem) });
}

let toastSeq = 0;

/** Shows a toast for a few seconds. @param {string} title @param {string} body @param {string} [tone] */
export function toast(title, body, tone = 'info') {
  const id = ++toastSeq;
  setState((s) => ({ toasts: [...s.toasts.slice(-4), { id, title, body, tone }] }));
  setTimeout(() => dismissToast(id), 6000);
}

/** @param {number} id */
export function dismissToast(id) {
  setState((s) => ({ toasts: s.toasts.filter((t) => t.id !== id) }));
}

/** @param {string} userId */
export function addPanel(userId) {
  const key = state.panels.reduce((m, p) => Math.max(m, p.key), 0) + 1;
  setState((s) => ({ panels: [...s.panels, { key, userId, token: '' }] }));
}

/** @param {number} key */
export function removePanel(key) {
  setState((s) => ({ panels: s.panels.filter((p) => p.key !== key) }));
}

/** @param {number} key @param {string} token */
export function setPanelToken(key, token) {
  setState((s) => ({ panels: s.panels.map((p) => (p.key === key ? { ...p, token: token.trim() } : p)) }));
}

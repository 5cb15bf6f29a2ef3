// @ts-check
// Imports users from a CSV file (`userId,roles,products`, `;` inside a cell): one PUT per new or
// changed user, a few at a time, with a progress bar and a summary with line numbers.
import { html, useState } from '../html.js';
import { api, describe } from '../api.js';
import { loadDirectory } from '../directory.js';
import { parseUsersCsv } from '../csv.js';
import { num } from '../format.js';

const PARALLEL = 4;

/** @typedef {import('../csv.js').ImportRow} ImportRow */

/** @param {ImportRow} row @param {Map<string, import('../state.js').User>} known */
function change(row, known) {
  const u = known.get(row.userId);
  if (!u) return 'added';
  const same = (/** @type {string[]} */ a, /** @type {string[]} */ b) => a.length === b.length && a.every((x, i) => x === b[i]);
  return same([...u.roles].sort(), row.roles) && same([...u.products].sort(), row.products) ? 'unchanged' : 'changed';
}

/** @param {{users: import('../state.js').User[]}} props */
export function CsvImport({ users }) {
  const [text, setText] = useState('');
  const [fileName, setFileName] = useState('');
  const [progress, setProgress] = useState(/** @type {{done: number, total: number}|null} */ (null));
  const [summary, setSummary] = useState(/** @type {any|null} */ (null));
  const parsed = text ? parseUsersCsv(text) : null;

  /** @param {any} e */
  const pick = async (e) => {
    const file = e.currentTarget.files?.[0];
    setSummary(null);
    setFileName(file ? file.name : '');
    setText(file ? await file.text() : '');
  };

  const run = async () => {
    if (!parsed) return;
    const known = new Map(users.map((u) => [u.userId, u]));
    const counts = { added: 0, changed: 0, unchanged: 0 };
    /** @type {{line: number, reason: string}[]} */
    const failed = [...parsed.rejected];
    const todo = parsed.rows.filter((r) => {
      const c = change(r, known);
      if (c === 'unchanged') counts.unchanged++;
      return c !== 'unchanged';
    });
    let done = 0;
    setProgress({ done, total: todo.length });
    const queue = [...todo];
    const worker = async () => {
      for (let row = queue.shift(); row; row = queue.shift()) {
        try {
          await api(`/api/admin/users/${encodeURIComponent(row.userId)}`, {
            method: 'PUT',
            body: { roles: row.roles, products: row.products },
          });
          counts[/** @type {'added'|'changed'} */ (change(row, known))]++;
        } catch (err) {
          failed.push({ line: row.line, reason: describe(err) });
        }
        setProgress({ done: ++done, total: todo.length });
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    failed.sort((a, b) => a.line - b.line);
    setSummary({ ...counts, failed });
    setProgress(null);
    await loadDirectory(true);
  };

  return html`
    <section class="card" aria-labelledby="import-title">
      <h2 id="import-title">Import users from CSV</h2>
      <p class="hint">One user per line: <code>userId,roles,products</code>, several names in a cell separated by
        <code>;</code> (<code>user-042,ADMIN;USER,Payments</code>). A header line is skipped. Each listed user's roles
        and products are replaced.</p>
      <div class="field">
        <label for="csv-file">CSV file</label>
        <input id="csv-file" type="file" accept=".csv,text/csv,text/plain" onChange=${pick} />
      </div>
      ${parsed &&
      html`<p class="hint" aria-live="polite">${fileName}: ${num(parsed.rows.length)} user${parsed.rows.length === 1 ? '' : 's'}${parsed.rejected.length ? `, ${parsed.rejected.length} line(s) rejected` : ''}.</p>`}
      ${progress &&
      html`<div class="field">
        <label for="import-progress">Import progress</label>
        <progress id="import-progress" max=${Math.max(progress.total, 1)} value=${progress.done}></progress>
        <span class="hint">${progress.done} / ${progress.total}</span>
      </div>`}
      <div class="actions">
        <button type="button" class="btn primary" disabled=${!parsed || parsed.rows.length === 0 || progress !== null} onClick=${run}>Import</button>
      </div>
      ${summary &&
      html`<div class=${`notice ${summary.failed.length ? 'warn' : 'ok'}`} role="status">
        <p>Import finished: ${summary.added} added, ${summary.changed} changed, ${summary.unchanged} unchanged, ${summary.failed.length} rejected.</p>
        ${summary.failed.length > 0 && html`<ul>${summary.failed.map((f) => html`<li>Line ${f.line}: ${f.reason}</li>`)}</ul>`}
      </div>`}
    </section>
  `;
}

// @ts-check
// Admin: the user directory: search, add, edit roles and products, delete, import a CSV.
import { html, useEffect, useState } from '../html.js';
import { api, describe } from '../api.js';
import { useAppState, toast } from '../state.js';
import { loadDirectory } from '../directory.js';
import { num } from '../format.js';
import { UserRow } from './UserRow.js';
import { AddUser } from './AddUser.js';
import { CsvImport } from './CsvImport.js';
import { Pager } from './Pager.js';
import { ConfirmDialog } from './ConfirmDialog.js';

const PAGE = 25;

export function Users() {
  const { users, usersError, usersLoading, authEpoch } = useAppState();
  const [query, setQuery] = useState('');
  const [page, setPage] = useState(0);
  const [deleting, setDeleting] = useState(/** @type {string|null} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  useEffect(() => {
    loadDirectory(true);
  }, [authEpoch]);

  const q = query.trim().toLowerCase();
  const matching = (users || []).filter(
    (u) => !q || u.userId.toLowerCase().includes(q) || [...u.roles, ...u.products].some((n) => n.toLowerCase().includes(q)),
  );
  const pages = Math.max(1, Math.ceil(matching.length / PAGE));
  const shown = matching.slice(page * PAGE, page * PAGE + PAGE);

  const remove = async () => {
    const id = deleting;
    setDeleting(null);
    try {
      await api(`/api/admin/users/${encodeURIComponent(id || '')}`, { method: 'DELETE' });
      toast('User deleted', `${id} is no longer in the directory; its delivery history is kept.`);
      await loadDirectory(true);
    } catch (e) {
      setError(describe(e));
    }
  };

  return html`
    <section class="card" aria-labelledby="users-title">
      <div class="title-row">
        <h1 id="users-title">Users</h1>
        <div class="field inline grow">
          <label for="user-search">Search users</label>
          <input id="user-search" type="search" value=${query} placeholder="ID, role or product"
            onInput=${(/** @type {any} */ e) => (setQuery(e.currentTarget.value), setPage(0))} />
        </div>
        <button type="button" class="btn" onClick=${() => loadDirectory(true)} disabled=${usersLoading}>Refresh</button>
      </div>
      ${(usersError || error) && html`<p class="error-text" role="alert">${usersError || error}</p>`}
      ${users === null && !usersError && html`<p class="hint">Loading the directory…</p>`}
      ${users && matching.length === 0 && html`<p class="empty">${users.length ? 'No user matches.' : 'The directory is empty.'}</p>`}
      ${shown.length > 0 &&
      html`<div class="table-wrap">
        <table class="users">
          <caption class="sr-only">Users with their roles and products</caption>
          <thead><tr><th scope="col">User</th><th scope="col">Roles</th><th scope="col">Products</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>${shown.map((u) => html`<${UserRow} key=${u.userId} user=${u} onDelete=${() => setDeleting(u.userId)} />`)}</tbody>
        </table>
      </div>
      <${Pager} label="User pages" hasPrev=${page > 0} hasNext=${page + 1 < pages}
        summary=${`${num(page * PAGE + 1)}–${num(Math.min(matching.length, page * PAGE + PAGE))} of ${num(matching.length)}`}
        onPrev=${() => setPage(page - 1)} onNext=${() => setPage(page + 1)} />`}
      <${ConfirmDialog}
        open=${deleting !== null}
        title=${`Delete ${deleting}?`}
        body="The user leaves the directory (and every audience). Its delivery history is kept."
        confirm="Delete user"
        onConfirm=${remove}
        onCancel=${() => setDeleting(null)}
      />
    </section>
    <div class="grid two cards">
      <${AddUser} />
      <${CsvImport} users=${users || []} />
    </div>
  `;
}

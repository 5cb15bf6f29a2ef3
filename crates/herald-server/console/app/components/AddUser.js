// @ts-check
// Adds a user to the directory (PUT /api/admin/users/{userId}).
import { html, useState } from '../html.js';
import { api, describe } from '../api.js';
import { loadDirectory } from '../directory.js';
import { toast } from '../state.js';
import { splitNames } from '../format.js';

export function AddUser() {
  const [userId, setUserId] = useState('');
  const [roles, setRoles] = useState('');
  const [products, setProducts] = useState('');
  const [error, setError] = useState(/** @type {string|null} */ (null));
  /** @param {Event} e */
  const add = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const id = userId.trim();
      await api(`/api/admin/users/${encodeURIComponent(id)}`, {
        method: 'PUT',
        body: { roles: splitNames(roles), products: splitNames(products) },
      });
      toast('User saved', id);
      setUserId('');
      setRoles('');
      setProducts('');
      await loadDirectory(true);
    } catch (err) {
      setError(describe(err));
    }
  };
  return html`
    <section class="card" aria-labelledby="add-user-title">
      <h2 id="add-user-title">Add or replace a user</h2>
      <form onSubmit=${add}>
        <div class="field">
          <label for="new-user-id">User ID</label>
          <input id="new-user-id" required value=${userId} onInput=${(/** @type {any} */ e) => setUserId(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="new-user-roles">Roles (comma-separated)</label>
          <input id="new-user-roles" value=${roles} onInput=${(/** @type {any} */ e) => setRoles(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="new-user-products">Products (comma-separated)</label>
          <input id="new-user-products" value=${products} onInput=${(/** @type {any} */ e) => setProducts(e.currentTarget.value)} />
        </div>
        ${error && html`<p class="error-text" role="alert">${error}</p>`}
        <div class="actions"><button type="submit" class="btn primary">Save user</button></div>
      </form>
    </section>
  `;
}

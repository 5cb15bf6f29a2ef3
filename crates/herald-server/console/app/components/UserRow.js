// @ts-check
// One directory row; Edit turns its roles and products into inputs (comma-separated).
import { html, useState } from '../html.js';
import { api, describe } from '../api.js';
import { loadDirectory } from '../directory.js';
import { toast } from '../state.js';
import { splitNames } from '../format.js';

/** @param {{user: import('../state.js').User, onDelete: () => void}} props */
export function UserRow({ user, onDelete }) {
  const [editing, setEditing] = useState(false);
  const [roles, setRoles] = useState('');
  const [products, setProducts] = useState('');
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const edit = () => {
    setRoles(user.roles.join(', '));
    setProducts(user.products.join(', '));
    setError(null);
    setEditing(true);
  };
  /** @param {Event} e */
  const save = async (e) => {
    e.preventDefault();
    try {
      await api(`/api/admin/users/${encodeURIComponent(user.userId)}`, {
        method: 'PUT',
        body: { roles: splitNames(roles), products: splitNames(products) },
      });
      setEditing(false);
      toast('User saved', user.userId);
      await loadDirectory(true);
    } catch (err) {
      setError(describe(err));
    }
  };
  if (!editing) {
    return html`<tr>
      <th scope="row">${user.userId}</th>
      <td>${user.roles.join(', ') || html`<span class="hint">none</span>`}</td>
      <td>${user.products.join(', ') || html`<span class="hint">none</span>`}</td>
      <td class="row-actions">
        <button type="button" key="edit" class="btn small" aria-label=${`Edit ${user.userId}`} onClick=${edit}>Edit</button>
        <button type="button" key="delete" class="btn small danger" aria-label=${`Delete ${user.userId}`} onClick=${onDelete}>Delete</button>
      </td>
    </tr>`;
  }
  // The buttons have keys: without them Preact would turn the Edit button being clicked into the
  // Save submit button before the click's default action, which would then submit the form.
  const form = `edit-${user.userId}`;
  return html`<tr class="editing">
    <th scope="row">${user.userId}</th>
    <td>
      <label class="mini-label" for=${`${form}-roles`}>Roles of ${user.userId}</label>
      <input id=${`${form}-roles`} form=${form} value=${roles} onInput=${(/** @type {any} */ e) => setRoles(e.currentTarget.value)} placeholder="ADMIN, USER" />
    </td>
    <td>
      <label class="mini-label" for=${`${form}-products`}>Products of ${user.userId}</label>
      <input id=${`${form}-products`} form=${form} value=${products} onInput=${(/** @type {any} */ e) => setProducts(e.currentTarget.value)} placeholder="Payments" />
      ${error && html`<p class="error-text" role="alert">${error}</p>`}
    </td>
    <td class="row-actions">
      <form key="form" id=${form} onSubmit=${save}></form>
      <button type="submit" key="save" form=${form} class="btn small primary">Save</button>
      <button type="button" key="cancel" class="btn small" onClick=${() => setEditing(false)}>Cancel</button>
    </td>
  </tr>`;
}

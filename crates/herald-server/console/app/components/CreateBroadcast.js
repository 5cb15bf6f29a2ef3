// @ts-check
// Admin: compose and send a broadcast with every field of SPEC section 1, the audience picked
// from the user directory and estimated before sending.
import { html, useEffect, useState } from '../html.js';
import { api, describe } from '../api.js';
import { useAppState } from '../state.js';
import { loadDirectory, estimateAudience } from '../directory.js';
import { CONTENT_LIMIT, chars, localToIso, num } from '../format.js';
import { TargetPicker } from './TargetPicker.js';
import { SentNote } from './SentNote.js';

const PRIORITIES = ['LOW', 'NORMAL', 'HIGH', 'URGENT'];
const TARGETS = [
  ['ALL', 'Everyone'],
  ['SELECTED', 'Selected users'],
  ['ROLE', 'Roles'],
  ['PRODUCT', 'Products'],
];

/** @typedef {'SELECTED'|'ROLE'|'PRODUCT'} PickedType */

const blank = () => ({
  senderId: 'console',
  senderName: '',
  content: '',
  priority: 'NORMAL',
  category: 'GENERAL',
  targetType: 'ALL',
  /** @type {Record<PickedType, string[]>} */
  picked: { SELECTED: [], ROLE: [], PRODUCT: [] },
  when: 'now',
  scheduledAt: '',
  expiresAt: '',
  fireAndForget: false,
});

/** @param {ReturnType<typeof blank>} f @param {string[]} ids @returns {string[]} */
function problems(f, ids) {
  const out = [];
  const n = chars(f.content);
  if (!f.content.trim()) out.push('Write the message.');
  if (n > CONTENT_LIMIT) out.push(`The message is ${num(n - CONTENT_LIMIT)} characters over the limit.`);
  if (f.targetType !== 'ALL' && ids.length === 0) out.push('Pick at least one recipient.');
  const at = f.when === 'at' ? localToIso(f.scheduledAt) : null;
  if (f.when === 'at' && !at) out.push('Choose the time to send at.');
  if (at && Date.parse(at) <= Date.now()) out.push('The send time has passed: choose a later time or "Send now".');
  const exp = localToIso(f.expiresAt);
  if (f.expiresAt && !exp) out.push('The expiry is not a valid time.');
  if (exp && Date.parse(exp) <= Math.max(Date.now(), at ? Date.parse(at) : 0)) {
    out.push('The expiry must come after the send time.');
  }
  return out;
}

export function CreateBroadcast() {
  const { users, usersError, usersLoading, authEpoch } = useAppState();
  const [f, setF] = useState(blank);
  const [tried, setTried] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [sent, setSent] = useState(/** @type {{b: any, warnings: string[]}|null} */ (null));
  useEffect(() => {
    loadDirectory();
  }, [authEpoch]);

  /** @param {Partial<ReturnType<typeof blank>>} patch */
  const set = (patch) => setF((prev) => ({ ...prev, ...patch }));
  /** @param {keyof ReturnType<typeof blank>} key */
  const field = (key) => (/** @type {any} */ e) =>
    set({ [key]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });
  const ids = f.targetType === 'ALL' ? [] : f.picked[/** @type {PickedType} */ (f.targetType)];
  const count = chars(f.content);
  const issues = problems(f, ids);
  const estimate = users ? estimateAudience(users, f.targetType, ids) : null;

  /** @param {Event} e */
  async function submit(e) {
    e.preventDefault();
    setTried(true);
    setError(null);
    if (issues.length) return;
    setBusy(true);
    try {
      const b = await api('/api/admin/broadcasts', {
        method: 'POST',
        body: {
          senderId: f.senderId.trim() || undefined,
          senderName: f.senderName.trim() || undefined,
          content: f.content,
          priority: f.priority,
          category: f.category.trim() || undefined,
          targetType: f.targetType,
          targetIds: ids,
          scheduledAt: f.when === 'at' ? localToIso(f.scheduledAt) : undefined,
          expiresAt: localToIso(f.expiresAt) || undefined,
          fireAndForget: f.fireAndForget,
        },
      });
      const warnings = Array.isArray(b.warnings) ? b.warnings.map(warningText) : [];
      setSent({ b, warnings });
      // The directory the estimate came from may be stale (the server found nobody): reload it.
      if (warnings.length > 0) loadDirectory(true);
      setF((prev) => ({ ...prev, content: '' }));
      setTried(false);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  }

  return html`
    <section class="card" aria-labelledby="create-title">
      <h1 id="create-title">New broadcast</h1>
      <form class="create" onSubmit=${submit} novalidate>
        <div class="grid two">
          <div class="field">
            <label for="sender-id">Sender ID</label>
            <input id="sender-id" value=${f.senderId} onInput=${field('senderId')} autocomplete="off" />
          </div>
          <div class="field">
            <label for="sender-name">Sender name</label>
            <input id="sender-name" value=${f.senderName} onInput=${field('senderName')} placeholder="Defaults to the sender ID" />
          </div>
        </div>
        <div class="field">
          <label for="content">Message</label>
          <textarea id="content" rows="5" value=${f.content} onInput=${field('content')} aria-describedby="content-count"
            aria-invalid=${count > CONTENT_LIMIT ? 'true' : undefined}></textarea>
          <p id="content-count" class=${`count${count > CONTENT_LIMIT ? ' over' : ''}`}>
            ${num(count)} / ${num(CONTENT_LIMIT)} characters${count > CONTENT_LIMIT ? ` (${num(count - CONTENT_LIMIT)} too many)` : ''}
          </p>
        </div>
        <div class="grid two">
          <div class="field">
            <label for="priority">Priority</label>
            <select id="priority" value=${f.priority} onChange=${field('priority')}>
              ${PRIORITIES.map((p) => html`<option value=${p}>${p[0] + p.slice(1).toLowerCase()}</option>`)}
            </select>
          </div>
          <div class="field">
            <label for="category">Category</label>
            <input id="category" list="categories" maxlength="100" value=${f.category} onInput=${field('category')} />
            <datalist id="categories">
              <option value="GENERAL"></option>
              <option value="MAINTENANCE"></option>
              <option value="SECURITY"></option>
              <option value="Force Logoff"></option>
            </datalist>
          </div>
        </div>
        <fieldset class="field">
          <legend>Audience</legend>
          <div class="choices">
            ${TARGETS.map(
              ([value, label]) => html`
                <label class="choice">
                  <input type="radio" name="target-type" value=${value} checked=${f.targetType === value}
                    onChange=${() => set({ targetType: value })} />
                  ${label}
                </label>
              `,
            )}
          </div>
          ${usersError && html`<p class="error-text" role="alert">The user directory could not be loaded: ${usersError}</p>`}
          ${f.targetType !== 'ALL' &&
          html`<${TargetPicker}
            users=${users || []}
            loading=${usersLoading}
            type=${f.targetType}
            selected=${ids}
            onChange=${(/** @type {string[]} */ next) => set({ picked: { ...f.picked, [f.targetType]: next } })}
          />`}
          <p class="estimate" id="audience-estimate" aria-live="polite">
            ${estimate === null
              ? usersError
                ? 'Audience: unknown until the directory loads.'
                : 'Audience: loading the directory…'
              : html`Audience: <strong>${num(estimate)} user${estimate === 1 ? '' : 's'}</strong>${' '}
                  <span class="hint">(an estimate from the directory of ${num(users?.length ?? 0)} users; the server decides membership when it delivers)</span>`}
          </p>
          ${estimate === 0 && html`<p class="warn-text">Nobody in the directory matches this audience now.</p>`}
        </fieldset>
        <div class="grid two">
          <fieldset class="field">
            <legend>When</legend>
            <div class="choices">
              <label class="choice">
                <input type="radio" name="when" value="now" checked=${f.when === 'now'} onChange=${() => set({ when: 'now' })} />
                Send now
              </label>
              <label class="choice">
                <input type="radio" name="when" value="at" checked=${f.when === 'at'} onChange=${() => set({ when: 'at' })} />
                At a time
              </label>
            </div>
            ${f.when === 'at' &&
            html`<label for="scheduled-at">Send at (local time)</label>
              <input id="scheduled-at" type="datetime-local" step="1" value=${f.scheduledAt} onInput=${field('scheduledAt')} />`}
          </fieldset>
          <fieldset class="field">
            <legend>Expiry and delivery</legend>
            <label for="expires-at">Expires at (optional, local time)</label>
            <input id="expires-at" type="datetime-local" step="1" value=${f.expiresAt} onInput=${field('expiresAt')} />
            <label class="choice">
              <input type="checkbox" checked=${f.fireAndForget} onChange=${field('fireAndForget')} aria-describedby="faf-hint" />
              Fire-and-forget
            </label>
            <p class="hint" id="faf-hint">Only users connected at that moment get it; it never enters an inbox.</p>
          </fieldset>
        </div>
        ${tried && issues.length > 0 && html`<ul class="error-text" role="alert">${issues.map((i) => html`<li>${i}</li>`)}</ul>`}
        ${error && html`<p class="error-text" role="alert">Not sent: ${error}</p>`}
        <div class="actions">
          <button type="submit" class="btn primary" disabled=${busy}>
            ${busy ? 'Sending…' : f.when === 'at' ? 'Schedule broadcast' : 'Send broadcast'}
          </button>
        </div>
      </form>
      ${sent && html`<${SentNote} sent=${sent} />`}
    </section>
  `;
}

/** A warning of the create answer (`{code, field, message}`) as one line. @param {any} w */
function warningText(w) {
  return typeof w === 'string' ? w : `${w.message} (${w.field})`;
}

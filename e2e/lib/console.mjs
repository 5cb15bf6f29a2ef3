// @ts-check
// What a person does in the console, as Playwright steps. Elements are found by role and label.

/** @typedef {import('playwright-core').Page} Page */

import { eventually, localInput } from './harness.mjs';

const TARGET_LABEL = { ALL: 'Everyone', SELECTED: 'Selected users', ROLE: 'Roles', PRODUCT: 'Products' };

/**
 * Sends a broadcast from the "New broadcast" screen and returns its id.
 * @param {Page} page
 * `inSeconds` schedules it that far ahead of the moment the time is typed; the answer then says
 * when (`at`, to the second).
 * @param {{content: string, target?: keyof TARGET_LABEL, ids?: string[], inSeconds?: number, priority?: string,
 *   expectAudience?: number}} b
 * @returns {Promise<{id: number, at: Date|null}>}
 */
export async function sendBroadcast(page, { content, target = 'ALL', ids = [], inSeconds, priority, expectAudience }) {
  if (!page.url().endsWith('#/admin/create')) await page.goto(`${new URL(page.url()).origin}/#/admin/create`);
  const form = page.getByRole('region', { name: 'New broadcast' });
  await form.getByLabel('Message').fill(content);
  if (priority) await form.getByLabel('Priority').selectOption(priority);
  await form.getByRole('radio', { name: TARGET_LABEL[target] }).check();
  for (const id of ids) await form.getByRole('checkbox', { name: id, exact: true }).check();
  if (expectAudience !== undefined) {
    const noun = expectAudience === 1 ? 'user' : 'users';
    await form.locator('#audience-estimate').getByText(`${expectAudience} ${noun}`, { exact: true }).waitFor();
  }
  let at = null;
  if (inSeconds) {
    await form.getByRole('radio', { name: 'At a time' }).check();
    at = new Date(Math.ceil((Date.now() + inSeconds * 1000) / 1000) * 1000);
    await form.getByLabel('Send at (local time)').fill(localInput(at));
  }
  const note = form.getByRole('status').filter({ hasText: 'Broadcast #' });
  const before = (await note.count()) ? await note.innerText() : '';
  await form.getByRole('button', { name: at ? 'Schedule broadcast' : 'Send broadcast' }).click();
  const text = await eventually(
    async () => {
      const t = (await note.count()) ? await note.innerText() : '';
      if (t && t !== before) return t;
      const alerts = await form.getByRole('alert').allInnerTexts();
      throw new Error(alerts.length ? `the form says: ${alerts.join(' / ')}` : 'no answer yet');
    },
    { what: `the answer to sending "${content}"` },
  );
  const id = Number(/#(\d+)/.exec(text)?.[1]);
  if (!id) throw new Error(`no broadcast id in "${text}"`);
  return { id, at };
}

/** Opens a user panel on the "User panels" screen. @param {Page} page @param {string} userId */
export async function openPanel(page, userId) {
  const screen = page.getByRole('region', { name: 'User panels' });
  await screen.getByLabel('User ID').fill(userId);
  await screen.getByRole('button', { name: 'Open panel' }).click();
}

/** The panel with this number. @param {Page} page @param {string} userId @param {number} key */
export function panel(page, userId, key) {
  return page.getByRole('region', { name: `${userId} panel ${key}`, exact: true });
}

/** The inbox items of a panel. @param {import('playwright-core').Locator} p */
export function inbox(p) {
  return p.getByRole('list', { name: /^Inbox of/ }).getByRole('listitem');
}

/** The ids of the messages a panel shows, sorted. @param {import('playwright-core').Locator} p */
export async function shownIds(p) {
  const labels = await inbox(p).evaluateAll((els) => els.map((e) => e.getAttribute('aria-label') || ''));
  return labels.map((l) => Number(l.replace('Message ', ''))).sort((a, b) => a - b);
}

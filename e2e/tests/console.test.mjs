// @ts-check
// The web console end to end: a real Herald (demo directory), Chromium, an admin tab and a tab of
// user panels side by side. Every wait is on a condition with a deadline; no fixed sleeps.
//
// Demo directory (README): user-002 = ADMIN, USER, no product; user-007 = USER, Analytics;
// user-003 = ADMIN, USER, Analytics + Payments.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, launchBrowser, startHerald, watchConsole } from '../lib/harness.mjs';
import { inbox, openPanel, panel, sendBroadcast, shownIds } from '../lib/console.mjs';

/** The panels the test opens: user and panel number. @type {[string, number][]} */
const PANELS = [['user-002', 1], ['user-007', 2], ['user-002', 3]];

describe('Herald web console', () => {
  /** @type {Awaited<ReturnType<typeof startHerald>>} */
  let herald;
  /** @type {Awaited<ReturnType<typeof launchBrowser>>} */
  let browser;
  /** @type {string[]} */
  let problems;
  /** @type {import('playwright-core').Page} */
  let admin;
  /** @type {import('playwright-core').Page} */
  let users;
  /** Broadcast ids by target type. */
  const sent = /** @type {Record<string, number>} */ ({});

  /** @param {Parameters<typeof sendBroadcast>[1]} b */
  const sentId = async (b) => (await sendBroadcast(admin, b)).id;

  before(async () => {
    herald = await startHerald();
    browser = await launchBrowser();
    problems = watchConsole(browser.context);
    admin = browser.context.pages()[0] ?? (await browser.context.newPage());
    users = await browser.context.newPage();
  });

  after(async () => {
    // The browser goes first, so no stream sees the server leave.
    await browser?.close();
    await herald?.stop();
  });

  it('serves the console at / with a CSP, and it renders', async () => {
    const res = await admin.goto(`${herald.base}/#/admin/create`);
    assert.equal(res?.status(), 200);
    const csp = res?.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    await admin.getByRole('heading', { name: 'New broadcast' }).waitFor();
    await admin.getByRole('region', { name: 'New broadcast' }).locator('#audience-estimate').getByText('10 users', { exact: true }).waitFor();
  });

  it('opens two users side by side (and user-002 twice), each live', async () => {
    await users.goto(`${herald.base}/#/users`);
    await openPanel(users, 'user-002');
    await openPanel(users, 'user-007');
    await openPanel(users, 'user-002');
    for (const [user, key] of PANELS) {
      await panel(users, user, key).getByRole('status', { name: 'Stream Live' }).waitFor();
    }
  });

  it('sends one broadcast of each target type; each user receives exactly theirs', async () => {
    sent.ALL = await sentId({ content: 'E2E to everyone', target: 'ALL', expectAudience: 10 });
    sent.SELECTED = await sentId({ content: 'E2E only for user-007', target: 'SELECTED', ids: ['user-007'], expectAudience: 1 });
    sent.ROLE = await sentId({ content: 'E2E for admins', target: 'ROLE', ids: ['ADMIN'], expectAudience: 2, priority: 'HIGH' });
    sent.PRODUCT = await sentId({ content: 'E2E for Analytics', target: 'PRODUCT', ids: ['Analytics'], expectAudience: 3 });
    // Events reach a stream in order: once this last one is shown, every earlier one was handled.
    sent.MARKER = await sentId({ content: 'E2E marker', target: 'ALL' });

    const expected = {
      'user-002': [sent.ALL, sent.ROLE, sent.MARKER],
      'user-007': [sent.ALL, sent.SELECTED, sent.PRODUCT, sent.MARKER],
    };
    for (const [user, key] of PANELS) {
      const p = panel(users, user, key);
      await p.getByRole('listitem', { name: `Message ${sent.MARKER}` }).waitFor();
      assert.deepEqual(await shownIds(p), expected[user], `${user} panel ${key}`);
      await p.getByText(`${expected[user].length} unread`).waitFor();
    }
    await users.getByRole('status', { name: 'Notifications' }).getByText('console: E2E marker').first().waitFor();
  });

  it('says so when a broadcast reaches nobody (the last MODERATOR lost the role after the form loaded)', async () => {
    await admin.goto(`${herald.base}/#/admin/create`);
    const form = admin.getByRole('region', { name: 'New broadcast' });
    await form.getByRole('radio', { name: 'Roles' }).check();
    // The form keeps its picks per target type: ADMIN is still checked from the earlier test.
    await form.getByRole('checkbox', { name: 'ADMIN', exact: true }).uncheck();
    await form.getByRole('checkbox', { name: 'MODERATOR', exact: true }).check();
    await form.locator('#audience-estimate').getByText('1 user', { exact: true }).waitFor();
    const put = (/** @type {string[]} */ roles) =>
      fetch(`${herald.base}/api/admin/users/user-005`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ roles, products: ['Payments'] }),
      });
    assert.equal((await put(['USER'])).status, 200);
    try {
      await form.getByLabel('Message').fill('E2E for moderators');
      await form.getByRole('button', { name: 'Send broadcast' }).click();
      const alert = form.getByRole('alert').filter({ hasText: 'The server warns' });
      await alert.getByText(/nobody is targeted now: no user has the role 'MODERATOR'/).waitFor();
      await form.getByRole('status').filter({ hasText: /^Broadcast #\d+ sent: audience 0 users\. See its statistics\./ }).waitFor();
    } finally {
      assert.equal((await put(['USER', 'MODERATOR'])).status, 200);
    }
  });

  it('reading in one panel clears the message in the other panel of the same user', async () => {
    const first = panel(users, 'user-002', 1);
    const second = panel(users, 'user-002', 3);
    await first.getByRole('listitem', { name: `Message ${sent.ROLE}` }).getByRole('button', { name: 'Mark read' }).click();
    await second.getByRole('listitem', { name: `Message ${sent.ROLE}` }).waitFor({ state: 'detached' });
    await first.getByRole('listitem', { name: `Message ${sent.ROLE}` }).waitFor({ state: 'detached' });
    await second.getByText('2 unread').waitFor();
    // user-007 never had it and keeps its own.
    assert.equal(await inbox(panel(users, 'user-007', 2)).count(), 4);
  });

  it('cancelling from the manage screen removes the message live and updates the list', async () => {
    await admin.goto(`${herald.base}/#/admin/broadcasts`);
    const screen = admin.getByRole('region', { name: 'Broadcasts' });
    const cancel = screen.getByRole('button', { name: `Cancel broadcast ${sent.ALL}` });
    const dialog = admin.getByRole('dialog', { name: `Cancel broadcast #${sent.ALL}?` });
    // Escape backs out (the safe button has the focus), and nothing is cancelled.
    await cancel.click();
    await dialog.getByRole('button', { name: 'Keep it' }).and(admin.locator(':focus')).waitFor();
    await admin.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await herald.api(`/api/admin/broadcasts/${sent.ALL}`)).status, 'ACTIVE');
    await cancel.click();
    await dialog.getByRole('button', { name: 'Cancel broadcast' }).click();
    for (const [user, key] of PANELS) {
      await panel(users, user, key).getByRole('listitem', { name: `Message ${sent.ALL}` }).waitFor({ state: 'detached' });
    }
    const row = screen.getByRole('row').filter({ has: admin.getByRole('link', { name: String(sent.ALL), exact: true }) });
    await row.getByText('CANCELLED').waitFor();
    await screen.getByRole('button', { name: `Cancel broadcast ${sent.ALL}` }).waitFor({ state: 'detached' });
  });

  it('a scheduled broadcast appears on time, not before', async () => {
    const { id, at } = await sendBroadcast(admin, { content: 'E2E scheduled for user-007', target: 'SELECTED', ids: ['user-007'], inSeconds: 5 });
    assert.ok(at);
    const item = panel(users, 'user-007', 2).getByRole('listitem', { name: `Message ${id}` });
    assert.ok(Date.now() < at.getTime(), 'the test sent it before its time');
    assert.equal(await item.count(), 0, 'not shown before its time');
    await item.waitFor({ timeout: 15000 });
    const late = Date.now() - at.getTime();
    assert.ok(late >= -100, `shown ${-late} ms early`);
    assert.ok(late < 3000, `shown ${late} ms late`);
  });

  it('the statistics page shows the counts, the chart and the per-user rows', async () => {
    await admin.goto(`${herald.base}/#/admin/broadcasts/${sent.ROLE}`);
    const page = admin.getByRole('region', { name: `Broadcast #${sent.ROLE}` });
    const cards = page.getByRole('list', { name: 'Counts' });
    // ROLE ADMIN: user-002 (connected, read it) and user-003 (never connected).
    const card = (/** @type {string} */ label) =>
      cards.getByRole('listitem').filter({ has: admin.getByText(label, { exact: true }) }).locator('.stat-value');
    await eventually(async () => (await card('Targeted').innerText()) === '2', { what: 'targeted = 2' });
    await eventually(async () => (await card('Delivered').innerText()) === '1', { what: 'delivered = 1' });
    await eventually(async () => (await card('Rendered').innerText()) === '1', { what: 'rendered = 1' });
    await eventually(async () => (await card('Read').innerText()) === '1', { what: 'read = 1' });
    // readRate is read / delivered (as in the system Herald replaces); the other is of targeted.
    await cards.getByText('100% of delivered · 50% of targeted').waitFor();
    await page.getByRole('img', { name: /Cumulative counts/ }).waitFor();
    const rows = page.getByRole('table').getByRole('row');
    await rows.filter({ hasText: 'user-002' }).filter({ hasText: 'READ' }).waitFor();
    await rows.filter({ hasText: 'user-003' }).filter({ hasText: 'PENDING' }).waitFor();
  });

  it('manages users: CSV import with a summary, edit, delete with confirmation', async () => {
    await admin.goto(`${herald.base}/#/admin/users`);
    const csv = 'userId,roles,products\nuser-100,USER;SUPPORT,Payments\nuser-001,USER,Payments;Analytics\nuser-002,ADMIN;USER,\nbad id,USER,\n';
    await admin.getByLabel('CSV file').setInputFiles({ name: 'users.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await admin.getByRole('button', { name: 'Import', exact: true }).click();
    await admin.getByText('Import finished: 1 added, 1 changed, 1 unchanged, 1 rejected.').waitFor();
    await admin.getByText("Line 5: 'bad id' is not a valid user id").waitFor();
    const roster = admin.getByRole('region', { name: 'Users' });
    await roster.getByLabel('Search users').fill('SUPPORT');
    await roster.getByRole('row', { name: /user-100/ }).waitFor();
    await roster.getByRole('button', { name: 'Edit user-100' }).click();
    await roster.getByLabel('Roles of user-100').fill('USER');
    await roster.getByRole('button', { name: 'Save' }).click();
    await roster.getByText('No user matches.').waitFor();
    await roster.getByLabel('Search users').fill('user-100');
    await roster.getByRole('button', { name: 'Delete user-100' }).click();
    await admin.getByRole('dialog', { name: 'Delete user-100?' }).getByRole('button', { name: 'Delete user' }).click();
    await roster.getByText('No user matches.').waitFor();
    const left = await herald.api('/api/admin/users?limit=1000');
    assert.ok(!left.some((/** @type {any} */ u) => u.userId === 'user-100'));
    assert.deepEqual(left.find((/** @type {any} */ u) => u.userId === 'user-001').products, ['Analytics', 'Payments']);
  });

  it('shows an empty dead-letter list on a single node', async () => {
    await admin.goto(`${herald.base}/#/admin/dead-letters`);
    await admin.getByText('No dead letters: every event reached its consumers.').waitFor();
  });

  it('fits a phone screen', async () => {
    await admin.setViewportSize({ width: 390, height: 844 });
    for (const route of ['#/admin/create', '#/admin/broadcasts', '#/admin/users']) {
      await admin.goto(`${herald.base}/${route}`);
      await admin.getByRole('heading', { level: 1 }).first().waitFor();
      if (route === '#/admin/broadcasts') await admin.getByRole('table').waitFor();
      const width = await admin.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `${route} is ${width}px wide on a 390px screen`);
    }
    await admin.setViewportSize({ width: 1280, height: 800 });
  });

  it('logged no console error or warning, and no failed request, in any tab', () => {
    assert.deepEqual(problems, []);
  });
});

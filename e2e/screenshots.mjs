// @ts-check
// Screenshots of the console's main screens at 1280×800 for the README (docs/images/console-*.png),
// against a real Herald seeded with a few broadcasts. `--phone DIR` also writes phone-width
// (390×844) shots of every screen into DIR, for checking by eye (they are not committed).
//
//   cargo build -p herald && (cd e2e && node screenshots.mjs)
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, launchBrowser, startHerald, watchConsole } from './lib/harness.mjs';
import { inbox, openPanel, panel } from './lib/console.mjs';

const OUT = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'images');
const phoneArg = process.argv.indexOf('--phone');
const PHONE_DIR = phoneArg > 0 ? process.argv[phoneArg + 1] : null;

/** @type {[string, number][]} */
const PANELS = [['user-002', 1], ['user-007', 2], ['user-003', 3]];

const herald = await startHerald();
const browser = await launchBrowser();
const problems = watchConsole(browser.context);
try {
  const ids = await seed();
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  mkdirSync(OUT, { recursive: true });
  const shot = async (/** @type {string} */ name) => {
    await page.screenshot({ path: join(OUT, `console-${name}.png`) });
    console.log(`docs/images/console-${name}.png`);
  };

  // New broadcast, composed to admins.
  await page.goto(`${herald.base}/#/admin/create`);
  const form = page.getByRole('region', { name: 'New broadcast' });
  await form.getByLabel('Sender name').fill('Ops team');
  await form.getByLabel('Message').fill('Database failover drill at 14:00 UTC. Expect up to 30 seconds of read-only mode.');
  await form.getByLabel('Priority').selectOption('HIGH');
  await form.getByLabel('Category').fill('MAINTENANCE');
  await form.getByRole('radio', { name: 'Roles' }).check();
  await form.getByRole('checkbox', { name: 'ADMIN', exact: true }).check();
  await form.getByRole('checkbox', { name: 'MODERATOR', exact: true }).check();
  await form.locator('#audience-estimate').getByText('3 users', { exact: true }).waitFor();
  await shot('create');

  await page.goto(`${herald.base}/#/admin/broadcasts`);
  await page.getByRole('table').waitFor();
  await shot('manage');

  await page.goto(`${herald.base}/#/admin/broadcasts/${ids.welcome}`);
  await page.getByRole('img', { name: /Cumulative counts/ }).waitFor();
  await page.getByRole('table').waitFor();
  await shot('stats');

  await page.goto(`${herald.base}/#/admin/users`);
  await page.getByRole('table').waitFor();
  await shot('users');

  // User panels, with a toast for a message that arrives while they are open.
  await page.goto(`${herald.base}/#/users`);
  for (const user of ['user-002', 'user-007', 'user-003']) await openPanel(page, user);
  for (const [user, key] of PANELS) {
    await panel(page, user, key).getByRole('status', { name: 'Stream Live' }).waitFor();
  }
  await herald.api('/api/admin/broadcasts', {
    method: 'POST',
    body: { senderId: 'ops', senderName: 'Ops team', content: 'Release 4.2 is live: new dashboards for Analytics users.', targetType: 'PRODUCT', targetIds: ['Analytics'] },
  });
  await page.getByRole('status', { name: 'Notifications' }).getByText('Release 4.2').first().waitFor();
  await page.getByLabel('User ID').blur();
  // Each unread count has caught up with its inbox.
  for (const [user, key] of PANELS) {
    const p = panel(page, user, key);
    await eventually(async () => (await p.locator('.unread').innerText()) === `${await inbox(p).count()} unread`, { what: `${user}'s count` });
  }
  await shot('panels');

  if (PHONE_DIR) {
    mkdirSync(PHONE_DIR, { recursive: true });
    await page.setViewportSize({ width: 390, height: 844 });
    for (const route of ['admin/create', 'admin/broadcasts', `admin/broadcasts/${ids.welcome}`, 'admin/users', 'users']) {
      await page.goto(`${herald.base}/#/${route}`);
      await page.getByRole('heading', { level: 1 }).first().waitFor();
      await eventually(() => page.evaluate(() => document.readyState === 'complete'));
      const file = join(PHONE_DIR, `phone-${route.replace(/\W+/g, '-')}.png`);
      await page.screenshot({ path: file, fullPage: true });
      console.log(file);
    }
  }
  if (problems.length) throw new Error(`console problems:\n${problems.join('\n')}`);
} finally {
  await browser.close();
  await herald.stop();
}

/** Broadcasts in every state, and delivery records spread over a few seconds so the chart has a shape. */
async function seed() {
  const post = (/** @type {any} */ body) => herald.api('/api/admin/broadcasts', { method: 'POST', body: { senderId: 'ops', senderName: 'Ops team', ...body } });
  const inHours = (/** @type {number} */ h) => new Date(Date.now() + h * 3600e3).toISOString();
  const old = await post({ content: 'Office closed on Monday for the public holiday.', targetType: 'ALL', targetIds: [] });
  await herald.api(`/api/admin/broadcasts/${old.id}`, { method: 'DELETE' });
  await post({ content: 'Payments maintenance tonight 22:00–23:00 UTC: card payments may be slow.', targetType: 'PRODUCT', targetIds: ['Payments'], priority: 'HIGH', category: 'MAINTENANCE', scheduledAt: inHours(6), expiresAt: inHours(8) });
  await post({ content: 'Your analytics export for Q3 is ready to download.', targetType: 'SELECTED', targetIds: ['user-007', 'user-009'], category: 'REPORTS' });
  await post({ content: 'Deploy freeze: no production changes until the incident review ends.', targetType: 'ROLE', targetIds: ['ADMIN'], priority: 'URGENT', category: 'INCIDENT' });
  const welcome = await post({ content: 'Welcome to the new Herald console! Announcements now arrive live, and you can see who read them.', targetType: 'ALL', targetIds: [], expiresAt: inHours(72) });
  // Users come online one after another: each fetches its inbox (delivered), most look at the
  // message (rendered), some read it. The pauses only spread the records over time for the chart.
  const pause = () => new Promise((r) => setTimeout(r, 350));
  const users = ['user-001', 'user-002', 'user-004', 'user-005', 'user-006', 'user-008', 'user-009', 'user-010'];
  for (const [i, userId] of users.entries()) {
    await herald.api(`/api/user/messages?userId=${userId}`);
    if (i % 4 !== 3) await herald.api('/api/user/messages/ack-visibility', { method: 'POST', body: { userId, broadcastId: welcome.id, correlationId: welcome.correlationId } });
    if (i % 2 === 0) await herald.api('/api/user/messages/read', { method: 'POST', body: { userId, broadcastId: welcome.id } });
    await pause();
  }
  return { welcome: welcome.id };
}

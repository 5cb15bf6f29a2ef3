// @ts-check
// User panels when the server ends streams: across a restart (SERVER_SHUTDOWN is shown, the panel
// retries with back-off while the server is away and resumes from its last event id, receiving what
// was published meanwhile), and over the per-user stream limit (CONNECTION_LIMIT_REACHED). While
// the server is down the panel's retries fail to connect: those are the only console errors allowed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, launchBrowser, startHerald, watchConsole } from '../lib/harness.mjs';
import { openPanel, panel } from '../lib/console.mjs';

describe('User panels when the server ends their streams', () => {
  /** @type {Awaited<ReturnType<typeof startHerald>>} */
  let herald;
  /** @type {Awaited<ReturnType<typeof launchBrowser>>} */
  let browser;
  /** @type {string[]} */
  let problems;

  before(async () => {
    herald = await startHerald();
    browser = await launchBrowser();
    problems = watchConsole(browser.context);
  });

  after(async () => {
    await browser?.close();
    await herald?.stop();
  });

  it('shows SERVER_SHUTDOWN, reconnects and resumes with the last event id', async () => {
    const page = browser.context.pages()[0] ?? (await browser.context.newPage());
    await page.goto(`${herald.base}/#/users`);
    await openPanel(page, 'user-002');
    const p = panel(page, 'user-002', 1);
    await p.getByRole('status', { name: 'Stream Live' }).waitFor();
    const before = await herald.api('/api/admin/broadcasts', {
      method: 'POST',
      body: { senderId: 'e2e', content: 'Before the restart', targetType: 'ROLE', targetIds: ['ADMIN'] },
    });
    await p.getByRole('listitem', { name: `Message ${before.id}` }).waitFor();
    const lastId = await p.locator('.event-id').innerText();
    assert.match(lastId, /^\d+$/);

    await herald.stop({ keep: true });
    await p.getByText('Server shutting down').waitFor();
    await p.getByRole('status', { name: 'Stream Reconnecting…' }).waitFor();

    herald = await startHerald([], herald);
    const during = await herald.api('/api/admin/broadcasts', {
      method: 'POST',
      body: { senderId: 'e2e', content: 'Published while the panel was away', targetType: 'ROLE', targetIds: ['ADMIN'] },
    });
    await p.getByRole('listitem', { name: `Message ${during.id}` }).waitFor({ timeout: 20000 });
    await p.getByRole('status', { name: 'Stream Live' }).waitFor();
    assert.equal(await p.getByRole('listitem', { name: `Message ${before.id}` }).count(), 1, 'still shown once');
    assert.ok(Number(await p.locator('.event-id').innerText()) > Number(lastId));
  });

  it('the stream over the per-user limit says so and stops; it reconnects once a panel closes', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${herald.base}/#/users`);
    // The default limit is 4 streams per user.
    for (let i = 0; i < 5; i++) await openPanel(page, 'user-009');
    const panels = page.getByRole('region', { name: /^user-009 panel / });
    const live = panels.filter({ has: page.getByRole('status', { name: 'Stream Live' }) });
    const limited = panels.filter({ hasText: 'Connection limit reached' });
    await limited.waitFor();
    await limited.getByRole('status', { name: 'Stream Closed' }).waitFor();
    await eventually(async () => (await live.count()) === 4, { what: '4 live panels' });
    await live.first().getByRole('button', { name: /^Close user-009 panel/ }).click();
    await limited.getByRole('button', { name: 'Reconnect' }).click();
    await eventually(async () => (await live.count()) === 4, { what: '4 live panels after the reconnect' });
    await page.close();
  });

  it('logged nothing but failed connects while the server was down', () => {
    const unexpected = problems.filter((p) => !/ERR_CONNECTION_REFUSED|HTTP 503/.test(p));
    assert.deepEqual(unexpected, []);
  });
});

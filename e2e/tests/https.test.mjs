// @ts-check
// The console over HTTPS: Herald serves TLS itself, Chromium speaks HTTP/2 to it, and more than six
// users' streams are live at once on one page (over HTTP/1.1 a browser allows six connections per
// origin, so the seventh EventSource would stall).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startHerald, watchConsole } from '../lib/harness.mjs';
import { openPanel, panel, sendBroadcast } from '../lib/console.mjs';

const USERS = ['user-001', 'user-002', 'user-003', 'user-004', 'user-005', 'user-006', 'user-007', 'user-008'];

describe('Herald web console over HTTPS and HTTP/2', () => {
  /** @type {Awaited<ReturnType<typeof startHerald>>} */
  let herald;
  /** @type {Awaited<ReturnType<typeof launchBrowser>>} */
  let browser;
  /** @type {string[]} */
  let problems;

  before(async () => {
    herald = await startHerald([], undefined, { tls: true });
    browser = await launchBrowser({ ignoreHTTPSErrors: true });
    problems = watchConsole(browser.context);
  });

  after(async () => {
    await browser?.close();
    await herald?.stop();
  });

  it('keeps eight users live at once and delivers a broadcast to each', async () => {
    const users = browser.context.pages()[0] ?? (await browser.context.newPage());
    const res = await users.goto(`${herald.base}/#/users`);
    assert.equal(res?.status(), 200);
    for (const user of USERS) await openPanel(users, user);
    for (const [i, user] of USERS.entries()) {
      await panel(users, user, i + 1).getByRole('status', { name: 'Stream Live' }).waitFor();
    }
    const protocols = await users.evaluate(() =>
      performance.getEntriesByType('resource').map((e) => /** @type {PerformanceResourceTiming} */ (e).nextHopProtocol),
    );
    assert.ok(protocols.includes('h2'), `the page spoke HTTP/2: ${protocols.join(', ')}`);

    const admin = await browser.context.newPage();
    await admin.goto(`${herald.base}/#/admin/create`);
    const { id } = await sendBroadcast(admin, { content: 'E2E over HTTP/2', target: 'ALL', expectAudience: 10 });
    for (const [i, user] of USERS.entries()) {
      await panel(users, user, i + 1).getByRole('listitem', { name: `Message ${id}` }).waitFor();
    }
    assert.deepEqual(problems, []);
  });
});

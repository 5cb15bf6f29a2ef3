// @ts-check
// The console against `auth = jwt`: it asks for a token, says when one lacks ADMIN or was refused,
// and user panels take their own tokens and show TOKEN_EXPIRED when the server ends the stream.
// The server's 401/403 answers are the expected console errors here; nothing else may appear.
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HERALD_BIN, launchBrowser, startHerald, watchConsole } from '../lib/harness.mjs';
import { openPanel, panel, sendBroadcast } from '../lib/console.mjs';

const SECRET = 'e2e-secret-that-is-long-enough-for-hs256';

/** @param {string} sub @param {string} roles @param {string} ttl */
function token(sub, roles, ttl = '1h') {
  const r = spawnSync(HERALD_BIN, ['token', '--sub', sub, '--roles', roles, '--ttl', ttl], {
    env: { ...process.env, HERALD_JWT_SECRET: SECRET },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe('Herald web console with auth = jwt', () => {
  /** @type {Awaited<ReturnType<typeof startHerald>>} */
  let herald;
  /** @type {Awaited<ReturnType<typeof launchBrowser>>} */
  let browser;
  /** @type {string[]} */
  let problems;
  /** @type {import('playwright-core').Page} */
  let page;

  before(async () => {
    herald = await startHerald(['--auth', 'jwt', '--jwt-secret', SECRET, '--jwt-leeway', '0s']);
    browser = await launchBrowser();
    problems = watchConsole(browser.context);
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
  });

  after(async () => {
    await browser?.close();
    await herald?.stop();
  });

  /** @param {string} value */
  async function enterToken(value) {
    await page.getByRole('button', { name: /^(Enter token|Token)/ }).first().click();
    const dialog = page.getByRole('dialog', { name: 'Admin token' });
    await dialog.getByLabel('Token (JWT)').fill(value);
    await dialog.getByRole('button', { name: 'Save token' }).click();
  }

  it('asks for a token, then says when it lacks ADMIN, then works with an admin token', async () => {
    await page.goto(`${herald.base}/#/admin/broadcasts`);
    await page.getByRole('alert').getByText('This server requires a token').waitFor();
    await enterToken(token('user-007', 'USER'));
    await page.getByRole('alert').getByText('This token lacks the ADMIN role').waitFor();
    await enterToken(token('user-002', 'ADMIN,USER'));
    await page.getByText('No broadcasts.').waitFor();
    assert.equal(await page.getByRole('alert').count(), 0);
    await page.getByRole('button', { name: 'Token: user-002' }).waitFor();
  });

  it('a user panel takes its own token, shows TOKEN_EXPIRED at expiry, and resumes with a fresh one', async () => {
    await page.goto(`${herald.base}/#/users`);
    await openPanel(page, 'user-007');
    const p = panel(page, 'user-007', 1);
    await p.getByText('This server needs a token').waitFor();
    await p.getByLabel('Token for user-007').fill(token('user-007', 'USER', '6s'));
    await p.getByRole('button', { name: 'Use token' }).click();
    await p.getByRole('status', { name: 'Stream Live' }).waitFor();
    await p.getByText('Token expired').waitFor({ timeout: 15000 });
    await p.getByRole('status', { name: 'Stream Closed' }).waitFor();
    await p.getByLabel('Token for user-007').fill(token('user-007', 'USER'));
    await p.getByRole('button', { name: 'Use token' }).click();
    await p.getByRole('status', { name: 'Stream Live' }).waitFor();
    // Sent by the admin of this tab, received on the panel's own stream.
    const users = page.url();
    const { id } = await sendBroadcast(page, { content: 'JWT e2e for user-007', target: 'SELECTED', ids: ['user-007'] });
    await page.goto(users);
    await panel(page, 'user-007', 1).getByRole('listitem', { name: `Message ${id}` }).waitFor();
  });

  it('says an expired admin token was refused', async () => {
    // The list polls, so the first call after the expiry meets the refusal.
    await page.goto(`${herald.base}/#/admin/broadcasts`);
    await enterToken(token('user-002', 'ADMIN', '1s'));
    await page.getByRole('alert').getByText('The token was refused').waitFor({ timeout: 10000 });
  });

  it('logged nothing but the server refusing tokens', () => {
    const unexpected = problems.filter(
      (p) => !/^HTTP 40[13]: /.test(p) && !/status of 40[13] \((Unauthorized|Forbidden)\)/.test(p),
    );
    assert.deepEqual(unexpected, []);
  });
});

// @ts-check
// Test harness: a real `herald serve --demo` on a free port over a fresh SQLite file, and
// Debian's Chromium driven by playwright-core. Nothing here builds Herald: run `cargo build -p
// herald` first, or point HERALD_BIN at a binary.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const HERALD_BIN = process.env.HERALD_BIN || join(ROOT, 'target', 'debug', 'herald');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/**
 * Polls `check` (which throws or returns false, null or undefined while the condition does not
 * hold) until it holds, and returns its value; fails after `timeout` ms.
 * @template T
 * @param {() => Promise<T> | T} check
 * @param {{timeout?: number, interval?: number, what?: string}} [options]
 * @returns {Promise<T>}
 */
export async function eventually(check, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  /** @type {unknown} */
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v !== false && v !== undefined && v !== null) return v;
      last = new Error(`${what}: not yet`);
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${last instanceof Error ? last.message : last}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

async function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (srv.address());
      srv.close(() => res(port));
    });
  });
}

/**
 * Starts Herald and waits (with a deadline) until /health/ready answers 200. `again` restarts a
 * stopped server on its port and database.
 * With `tls`, `herald cert --self-signed` writes a certificate for localhost first and Herald
 * serves HTTPS (and HTTP/2) with it at `https://localhost:<port>`.
 * @param {string[]} [extra] more `serve` arguments
 * @param {{port: number, dir: string}} [again]
 * @param {{tls?: boolean}} [options]
 */
export async function startHerald(extra = [], again, { tls = false } = {}) {
  if (!existsSync(HERALD_BIN)) {
    throw new Error(`no Herald binary at ${HERALD_BIN}: run \`cargo build -p herald\` or set HERALD_BIN`);
  }
  const dir = again?.dir ?? mkdtempSync(join(tmpdir(), 'herald-e2e-'));
  const port = again?.port ?? (await freePort());
  const base = tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;
  const tlsArgs = [];
  if (tls) {
    execFileSync(HERALD_BIN, ['cert', '--self-signed', '--host', 'localhost', '--out-dir', dir, '--force'], { stdio: 'ignore' });
    tlsArgs.push('--tls-cert-file', join(dir, 'herald.crt'), '--tls-key-file', join(dir, 'herald.key'));
  }
  const args = ['serve', '--demo', '--listen', `127.0.0.1:${port}`, '--database-url', `sqlite://${join(dir, 'h.db')}`, ...tlsArgs, ...extra];
  const child = spawn(HERALD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`herald exited with ${child.exitCode}: ${stderr}`);
        if (tls) return (await httpsStatus(`${base}/health/ready`, readFileSync(join(dir, 'herald.crt')))) === 200;
        const r = await fetch(`${base}/health/ready`);
        return r.status === 200;
      },
      { timeout: 30000, interval: 100, what: `${base}/health/ready` },
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    base,
    port,
    dir,
    /**
     * Calls the API directly (test setup, not what the console does).
     * @param {string} path @param {{method?: string, body?: unknown}} [options] @returns {Promise<any>}
     */
    async api(path, { method = 'GET', body = undefined } = {}) {
      const r = await fetch(base + path, {
        method,
        headers: body ? { 'Content-Type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
      return r.status === 204 ? null : r.json();
    },
    /** Graceful stop (SIGTERM); `keep` leaves the database for a restart. */
    async stop({ keep = false } = {}) {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
    stderr: () => stderr,
  };
}

/**
 * The status of a GET over HTTPS, trusting only `ca`.
 * @param {string} url @param {Buffer} ca @returns {Promise<number>}
 */
function httpsStatus(url, ca) {
  return new Promise((res, rej) => {
    httpsGet(url, { ca }, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    }).on('error', rej);
  });
}

/**
 * Launches Chromium with a fresh profile. `ignoreHTTPSErrors` accepts the self-signed certificate
 * of a `tls` Herald.
 * @param {{ignoreHTTPSErrors?: boolean}} [options]
 */
export async function launchBrowser({ ignoreHTTPSErrors = false } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'herald-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    ignoreHTTPSErrors,
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Records every console error or warning, uncaught page error, failed request and 4xx/5xx
 * response of every page in `context`.
 * @param {import('playwright-core').BrowserContext} context
 */
export function watchConsole(context) {
  /** @type {string[]} */
  const problems = [];
  const watch = (/** @type {import('playwright-core').Page} */ page) => {
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      // A stream closed by the page itself (panel closed, page left) is not a failure.
      if (r.url().includes('/sse/connect') && /ERR_ABORTED/.test(r.failure()?.errorText || '')) return;
      problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
    });
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  return problems;
}

/** A local `datetime-local` value (with seconds) for a Date. @param {Date} d */
export function localInput(d) {
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

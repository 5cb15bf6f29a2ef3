// @ts-check
// One simulated user's live connection, as a user panel shows it: the inbox, the unread count,
// and an EventSource on /api/user/sse/connect that follows every stream event of SPEC section 3.
//
// Reconnects: while the browser's EventSource is retrying by itself (after a dropped stream) it
// sends `Last-Event-ID` on its own. Herald also ends streams on purpose (SERVER_SHUTDOWN,
// CONNECTION_LIMIT_REACHED, TOKEN_EXPIRED, Force Logoff), and an EventSource gives up for good
// on a non-200 answer; in those cases this class decides: it stops, or opens a new EventSource
// itself after a back-off, passing the last event id as the `lastEventId` query parameter.
import { api, describe, ApiError } from './api.js';
import { toast } from './state.js';
import { truncate } from './format.js';

/**
 * @typedef {{broadcastId: number, correlationId: string, senderId: string, senderName: string,
 *   content: string, priority: string, category: string, broadcastCreatedAt: string,
 *   scheduledAt: string|null, expiresAt: string|null, fireAndForget: boolean}} Message
 * @typedef {'connecting'|'live'|'reconnecting'|'closed'} Status
 * @typedef {{tone: 'info'|'warn'|'error', text: string}} Notice
 * @typedef {{status: Status, lastEventId: string|null, connectionId: string|null,
 *   notice: Notice|null, needsToken: boolean, messages: Message[], unread: number|null,
 *   inboxError: string|null, loading: boolean, hasMore: boolean, heartbeat: string|null}} StreamView
 */

const INBOX_PAGE = 100;
const MAX_BACKOFF_MS = 30000;

export class UserStream {
  /** @param {string} userId @param {string} token */
  constructor(userId, token) {
    this.userId = userId;
    this.token = token;
    /** @type {EventSource|null} */
    this.es = null;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.countTimer = undefined;
    this.attempt = 0;
    /** No automatic reconnect: the user closed it, or the server said not to. */
    this.stopped = false;
    this.disposed = false;
    this.everLive = false;
    /** @type {number|null} the position to resume from */
    this.resumeFrom = null;
    /** Broadcasts read or removed: never shown again. @type {Set<number>} */
    this.gone = new Set();
    /** @type {Set<number>} */
    this.acked = new Set();
    /** @type {Map<number, Message>} */
    this.messages = new Map();
    /** Which inbox fetch was running when a message arrived live. @type {Map<number, number>} */
    this.arrivedDuring = new Map();
    this.fetches = 0;
    /** @type {Set<() => void>} */
    this.listeners = new Set();
    /** @type {StreamView} */
    this.view = {
      status: 'connecting', lastEventId: null, connectionId: null, notice: null, needsToken: false,
      messages: [], unread: null, inboxError: null, loading: false, hasMore: false, heartbeat: null,
    };
  }

  /** @param {() => void} f */
  subscribe(f) {
    this.listeners.add(f);
    return () => {
      this.listeners.delete(f);
    };
  }

  /** @param {Partial<StreamView>} patch */
  update(patch) {
    this.view = { ...this.view, ...patch };
    this.listeners.forEach((f) => f());
  }

  publish() {
    const messages = [...this.messages.values()].sort((a, b) => b.broadcastId - a.broadcastId);
    this.update({ messages });
    this.refreshCount();
  }

  /** @param {string} path @param {{method?: string, body?: unknown}} [options] */
  request(path, options = {}) {
    return api(path, { ...options, token: this.token, admin: false });
  }

  /** Loads the inbox, then opens the stream. */
  async start() {
    this.stopped = false;
    this.update({ status: 'connecting', notice: null, needsToken: false });
    if ((await this.loadInbox()) && !this.disposed && !this.stopped) this.connect();
  }

  /** @param {boolean} [older] fetch the page after the oldest shown message @returns {Promise<boolean>} false on 401/403 */
  async loadInbox(older = false) {
    const fetch = ++this.fetches;
    const q = new URLSearchParams({ userId: this.userId, limit: String(INBOX_PAGE) });
    const ids = [...this.messages.keys()];
    if (older && ids.length) q.set('before', String(Math.min(...ids)));
    this.update({ loading: true });
    try {
      /** @type {Message[]} */
      const items = await this.request(`/api/user/messages?${q}`);
      if (!older) {
        // Keep what arrived live while this fetch ran; drop what the server no longer lists.
        for (const id of this.messages.keys()) {
          if ((this.arrivedDuring.get(id) ?? -1) < fetch) this.messages.delete(id);
        }
      }
      for (const m of items) if (!this.gone.has(m.broadcastId)) this.messages.set(m.broadcastId, m);
      this.update({ loading: false, inboxError: null, hasMore: items.length === INBOX_PAGE });
      this.publish();
      return true;
    } catch (e) {
      this.update({ loading: false, inboxError: describe(e) });
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        this.authFailed(e);
        return false;
      }
      return true;
    }
  }

  refreshCount() {
    clearTimeout(this.countTimer);
    this.countTimer = setTimeout(async () => {
      try {
        const r = await this.request(`/api/user/messages/unread-count?${new URLSearchParams({ userId: this.userId })}`);
        this.update({ unread: r.unread });
      } catch {
        // The inbox shows the error; the count keeps its last value.
      }
    }, 80);
  }

  connect() {
    this.closeSource();
    clearTimeout(this.retryTimer);
    if (this.disposed) return;
    const q = new URLSearchParams({ userId: this.userId });
    if (this.token) q.set('access_token', this.token);
    if (this.resumeFrom !== null) q.set('lastEventId', String(this.resumeFrom));
    this.update({ status: this.everLive ? 'reconnecting' : 'connecting' });
    const es = new EventSource(`/api/user/sse/connect?${q}`);
    this.es = es;
    /** @param {string} name @param {(data: any) => void} handle */
    const on = (name, handle) =>
      es.addEventListener(name, (ev) => {
        if (this.es !== es) return;
        const e = /** @type {MessageEvent} */ (ev);
        if (e.lastEventId) this.sawId(e.lastEventId);
        let data = {};
        try {
          data = JSON.parse(e.data);
        } catch {
          // Every Herald event is JSON; ignore anything else.
        }
        handle(data);
      });
    on('CONNECTED', (d) => this.onConnected(d));
    on('MESSAGE', (d) => this.onMessage(d));
    on('MESSAGE_REMOVED', (d) => this.drop(d.broadcastId));
    on('READ_RECEIPT', (d) => this.drop(d.broadcastId));
    on('HEARTBEAT', (d) => this.update({ heartbeat: d.timestamp }));
    on('RESYNC', () => this.loadInbox());
    on('SERVER_SHUTDOWN', (d) => {
      this.closeSource();
      this.attempt = 0;
      this.update({ notice: { tone: 'warn', text: `Server shutting down: ${d.message || 'no reason given'}. Reconnecting…` } });
      this.retryLater();
    });
    on('CONNECTION_LIMIT_REACHED', (d) =>
      this.stop(`Connection limit reached: ${d.message || ''} (limit ${d.limit ?? '?'}). Not reconnecting; close another panel of ${this.userId}, then reconnect.`, 'error'),
    );
    on('TOKEN_EXPIRED', (d) => {
      this.stop(`Token expired: ${d.message || ''} Paste a fresh token for ${this.userId}.`, 'error');
      this.update({ needsToken: true });
    });
    es.onerror = () => {
      if (this.es !== es) return;
      if (es.readyState === EventSource.CONNECTING) {
        this.update({ status: 'reconnecting' });
      } else {
        this.es = null;
        this.retryLater();
      }
    };
  }

  /** @param {string} raw */
  sawId(raw) {
    const n = Number(raw);
    if (Number.isFinite(n) && (this.resumeFrom === null || n > this.resumeFrom)) this.resumeFrom = n;
    this.update({ lastEventId: raw });
  }

  /** @param {{connectionId?: string, headEventId?: string, lastEventId?: string|null}} d */
  onConnected(d) {
    const reconnected = this.everLive;
    this.everLive = true;
    this.attempt = 0;
    if (this.resumeFrom === null && d.headEventId != null && Number.isFinite(Number(d.headEventId))) {
      this.resumeFrom = Number(d.headEventId);
    }
    this.update({ status: 'live', connectionId: d.connectionId ?? null, notice: null });
    // A fresh stream after a drop cannot replay what we missed (reads, removals): refetch.
    if (reconnected && d.lastEventId == null) this.loadInbox();
  }

  /** @param {Message} m */
  onMessage(m) {
    const id = m.broadcastId;
    if (typeof id !== 'number' || this.gone.has(id)) return;
    const known = this.messages.has(id);
    this.messages.set(id, { ...this.messages.get(id), ...m });
    this.arrivedDuring.set(id, this.fetches);
    this.publish();
    if (!known) {
      const kind = m.priority === 'NORMAL' ? 'New message' : `New ${m.priority.toLowerCase()} message`;
      toast(`${this.userId}: ${kind}`, `${m.senderName}: ${truncate(m.content, 140)}`, m.priority);
    }
    if ((m.category || '').toLowerCase() === 'force logoff') {
      this.stop('Logged off by an admin (Force Logoff). Reconnect when ready.', 'warn');
    }
  }

  /** @param {number} id */
  drop(id) {
    this.gone.add(id);
    if (this.messages.delete(id)) this.publish();
    else this.refreshCount();
  }

  retryLater() {
    if (this.stopped || this.disposed) return;
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt++;
    this.update({ status: 'reconnecting' });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.probeThenConnect(), delay);
  }

  /** Before reopening, learn whether the server would refuse us (a failed EventSource cannot say why). */
  async probeThenConnect() {
    try {
      await this.request(`/api/user/messages/unread-count?${new URLSearchParams({ userId: this.userId })}`);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return this.authFailed(e);
      if (!(e instanceof ApiError) || e.status === 0 || e.status >= 500) return this.retryLater();
    }
    if (!this.stopped && !this.disposed) this.connect();
  }

  /** @param {ApiError} e */
  authFailed(e) {
    const text =
      e.status === 403
        ? `Not allowed: ${e.message}. The token must belong to ${this.userId}.`
        : this.token
          ? `The token was refused: ${e.message}. Paste a fresh token for ${this.userId}.`
          : `This server needs a token (auth = jwt). Paste a token for ${this.userId}.`;
    this.stop(text, 'error');
    this.update({ needsToken: true });
  }

  /** Closes the stream and does not reconnect. @param {string} text @param {Notice['tone']} tone */
  stop(text, tone = 'info') {
    this.stopped = true;
    this.closeSource();
    clearTimeout(this.retryTimer);
    this.update({ status: 'closed', notice: { tone, text } });
  }

  closeSource() {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
  }

  /** The user's Reconnect button: resumes from the last event id. */
  reconnect() {
    this.stopped = false;
    this.attempt = 0;
    this.update({ notice: null });
    this.connect();
  }

  /** @param {string} token */
  setToken(token) {
    this.token = token;
    this.closeSource();
    this.start();
  }

  /** @param {Message} m */
  async markRead(m) {
    try {
      await this.request('/api/user/messages/read', { method: 'POST', body: { userId: this.userId, broadcastId: m.broadcastId } });
      this.drop(m.broadcastId);
    } catch (e) {
      this.update({ notice: { tone: 'error', text: `Could not mark #${m.broadcastId} read: ${describe(e)}` } });
    }
  }

  async readAll() {
    try {
      const r = await this.request('/api/user/messages/read-all', { method: 'POST', body: { userId: this.userId } });
      for (const [id, m] of this.messages) if (!m.fireAndForget) this.gone.add(id);
      await this.loadInbox();
      this.update({ notice: { tone: 'info', text: `Marked ${r.read} message${r.read === 1 ? '' : 's'} read.` } });
    } catch (e) {
      this.update({ notice: { tone: 'error', text: `Could not mark all read: ${describe(e)}` } });
    }
  }

  /** Fire-and-forget messages are not in the inbox; the user dismisses them. @param {Message} m */
  dismiss(m) {
    this.drop(m.broadcastId);
  }

  /** The visibility acknowledgement, once per message. @param {Message} m */
  async ack(m) {
    if (this.acked.has(m.broadcastId)) return;
    this.acked.add(m.broadcastId);
    try {
      await this.request('/api/user/messages/ack-visibility', {
        method: 'POST',
        body: { userId: this.userId, broadcastId: m.broadcastId, correlationId: m.correlationId },
      });
    } catch {
      this.acked.delete(m.broadcastId);
    }
  }

  /** The user's Disconnect button. */
  disconnect() {
    this.stop('Disconnected. Reconnect resumes from the last event id.');
  }

  dispose() {
    this.disposed = true;
    this.stopped = true;
    this.closeSource();
    clearTimeout(this.retryTimer);
    clearTimeout(this.countTimer);
    this.listeners.clear();
  }
}

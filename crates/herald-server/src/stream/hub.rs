//! The SSE hub: this node's registry of open streams, the replay window, and dispatch of logged
//! events to the streams whose user they concern.
//!
//! One `std::sync::Mutex` guards the registry, the window and the head position together, so a
//! stream that registers sees exactly the events up to `head` in the window (or the store) and
//! every later event on its queue: nothing is missed and nothing is sent twice. The lock is never
//! held across an `.await`; dispatch only does `try_send` of shared frames under it.

use super::frame;
use super::queue::{self, Out};
use super::window::{Logged, Window};
use crate::backlog::Backlog;
use crate::metrics::Metrics;
use bytes::Bytes;
use herald_domain::{Broadcast, Event, EventBody, Timestamp, User};
use herald_store::DeliveryMark;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub queue: usize,
    pub per_user: usize,
    pub total: usize,
    pub window_entries: usize,
    pub window_bytes: usize,
}

struct Conn {
    id: u64,
    connection_id: Arc<str>,
    tx: queue::Sender,
    /// Closes the stream's TCP connection at once (a stuck client may never read another byte).
    kill: CancellationToken,
}

struct Slot {
    user: Arc<str>,
    profile: User,
    conns: Vec<Conn>,
}

struct Registry {
    head: i64,
    users: HashMap<Arc<str>, Slot>,
    total: usize,
    accepting: bool,
    window: Window,
    /// Every broadcast that may be live at `head` (a superset), when known: a fresh stream whose
    /// user none of them addresses has no pending message, and skips the store.
    live: Option<HashMap<i64, Broadcast>>,
    /// The position of the last user change dispatched: a profile read before it may be stale.
    last_user_change: i64,
}

/// Live broadcasts the hub keeps track of at most; with more, every fresh stream asks the store.
const MAX_LIVE_TRACKED: usize = 256;

pub struct Hub {
    registry: Mutex<Registry>,
    config: HubConfig,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    backlog: Arc<Backlog>,
}

/// Where a registering stream resumes from.
#[derive(Debug)]
pub enum Replay {
    /// No `Last-Event-ID`: send the pending messages.
    Fresh,
    /// No `Last-Event-ID`, and no live broadcast addresses the user: nothing is pending.
    NothingPending,
    /// The window holds every event after the client's position `after`; `gone` lists the
    /// broadcasts it removes or the user reads later on (their messages are not replayed).
    Window { after: i64, gone: HashSet<i64> },
    /// The window starts after the client's position: read the log in the store.
    Store { after: i64 },
    /// The position is ahead of this node's log: the client must resync.
    Unknown,
}

pub struct Registration {
    pub rx: queue::Receiver,
    pub head: i64,
    pub replay: Replay,
    pub guard: ConnGuard,
}

pub enum Admission {
    Accepted(Registration),
    UserLimit(usize),
    NodeFull(usize),
    ShuttingDown,
}

/// Unregisters its stream when dropped, however the stream ends.
pub struct ConnGuard {
    hub: Arc<Hub>,
    user: Arc<str>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.hub.unregister(&self.user, self.id);
    }
}

/// What dispatching one event produced: the records the recorder must write.
pub struct Dispatched {
    pub marks: Vec<DeliveryMark>,
}

impl Hub {
    pub fn new(config: HubConfig, head: i64, metrics: Arc<Metrics>) -> Self {
        let window = Window::new(config.window_entries, config.window_bytes);
        Self {
            registry: Mutex::new(Registry {
                head,
                users: HashMap::new(),
                total: 0,
                accepting: true,
                window,
                live: None,
                last_user_change: 0,
            }),
            config,
            next_id: AtomicU64::new(1),
            metrics,
            backlog: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated in a way that
        // matters more than losing the node, so recover the guard.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frames queued on this node's streams and not yet taken by their writers.
    pub fn backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    pub fn head(&self) -> i64 {
        self.lock().head
    }

    /// How many active broadcasts to read to start tracking them: one more than it tracks.
    pub const LIVE_PAGE: u32 = MAX_LIVE_TRACKED as u32 + 1;

    /// Starts tracking live broadcasts from `active`: every broadcast active in the store, read
    /// after the head this hub started from (and before any dispatch). Until then, and with more
    /// than [`MAX_LIVE_TRACKED`], every fresh stream asks the store for its pending messages.
    pub fn track_live(&self, active: Vec<Broadcast>) {
        let live: HashMap<i64, Broadcast> =
            active.into_iter().filter(|b| !b.fire_and_forget).map(|b| (b.id, b)).collect();
        self.lock().live = (live.len() <= MAX_LIVE_TRACKED).then_some(live);
    }

    /// Registers a stream of `profile`, read from the directory after position `profile_as_of`.
    pub fn register(
        self: &Arc<Self>,
        profile: User,
        profile_as_of: i64,
        connection_id: Arc<str>,
        kill: CancellationToken,
        last_event_id: Option<i64>,
    ) -> Admission {
        let mut reg = self.lock();
        if !reg.accepting {
            return Admission::ShuttingDown;
        }
        if reg.total >= self.config.total {
            return Admission::NodeFull(self.config.total);
        }
        let user: Arc<str> = Arc::from(profile.user_id.as_str());
        let open = reg.users.get(&user).map_or(0, |s| s.conns.len());
        if open >= self.config.per_user {
            return Admission::UserLimit(self.config.per_user);
        }
        let head = reg.head;
        let replay = match last_event_id {
            None if reg.last_user_change <= profile_as_of && !may_have_pending(&mut reg.live, &profile) => {
                Replay::NothingPending
            }
            None => Replay::Fresh,
            Some(n) if n > head => Replay::Unknown,
            Some(n) => match reg.window.range(n, head) {
                Some(entries) => Replay::Window { after: n, gone: gone_for(entries, &profile) },
                None => Replay::Store { after: n },
            },
        };
        let (tx, rx) = queue::channel(self.config.queue, self.backlog.clone());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = reg.users.entry(user.clone()).or_insert_with(|| Slot {
            user: user.clone(),
            profile,
            conns: Vec::new(),
        });
        slot.conns.push(Conn { id, connection_id, tx, kill });
        reg.total += 1;
        drop(reg);
        Metrics::inc(&self.metrics.streams_opened_total);
        Admission::Accepted(Registration {
            rx,
            head,
            replay,
            guard: ConnGuard { hub: self.clone(), user, id },
        })
    }

    /// Up to `max` window entries with `after < seq <= upto`, or `None` when the window no longer
    /// holds the first of them.
    pub fn window_page(&self, after: i64, upto: i64, max: usize) -> Option<Vec<Logged>> {
        let reg = self.lock();
        let page = reg.window.range(after, upto)?.take(max).cloned().collect();
        Some(page)
    }

    fn unregister(&self, user: &str, id: u64) {
        let mut reg = self.lock();
        let Some(slot) = reg.users.get_mut(user) else { return };
        let before = slot.conns.len();
        slot.conns.retain(|c| c.id != id);
        let removed = before - slot.conns.len();
        if slot.conns.is_empty() {
            reg.users.remove(user);
        }
        reg.total -= removed;
    }

    /// Hands a logged event to every local stream it concerns and appends it to the window.
    pub fn dispatch(&self, event: Arc<Event>) -> Dispatched {
        let frame = frame::logged_frame(&event);
        let now = Timestamp::now();
        let mut marks = Vec::new();
        let mut reg = self.lock();
        if event.seq <= reg.head {
            return Dispatched { marks };
        }
        reg.head = event.seq;
        reg.window.push(Logged { event: event.clone(), frame: frame.clone() });
        track(&mut reg.live, &event.body, now);
        let mut dead = Vec::new();
        match &event.body {
            EventBody::UserChanged { user, deleted } => {
                reg.last_user_change = event.seq;
                if let Some(slot) = reg.users.get_mut(user.user_id.as_str()) {
                    slot.profile = if *deleted { User::bare(user.user_id.clone()) } else { user.clone() };
                }
            }
            EventBody::Message { broadcast } if broadcast.is_live_at(now) => {
                let frame = frame.unwrap_or_default();
                let logoff = broadcast.is_force_logoff();
                for_each_recipient(&mut reg, &event.body, |slot| {
                    if send_all(slot, &frame, logoff, &mut dead) {
                        marks.push(DeliveryMark {
                            broadcast_id: broadcast.id,
                            user_id: slot.user.clone(),
                            at: now,
                            read: broadcast.fire_and_forget,
                        });
                    }
                });
            }
            EventBody::Message { .. } => {}
            EventBody::MessageRemoved { .. } | EventBody::ReadReceipt { .. } => {
                let frame = frame.unwrap_or_default();
                for_each_recipient(&mut reg, &event.body, |slot| {
                    send_all(slot, &frame, false, &mut dead);
                });
            }
        }
        let slow = self.drop_conns(&mut reg, dead);
        drop(reg);
        Metrics::inc(&self.metrics.events_dispatched_total);
        Metrics::add(&self.metrics.message_deliveries_total, marks.len() as u64);
        Metrics::add(&self.metrics.streams_closed_slow_total, slow);
        Dispatched { marks }
    }

    /// Queues `frame` on every stream (heartbeats); a stream that cannot take it is closed.
    pub fn send_to_all(&self, frame: &Bytes) {
        let mut reg = self.lock();
        let mut dead = Vec::new();
        for slot in reg.users.values_mut() {
            send_all(slot, frame, false, &mut dead);
        }
        let slow = self.drop_conns(&mut reg, dead);
        Metrics::add(&self.metrics.streams_closed_slow_total, slow);
    }

    /// Removes streams whose queue was full or closed, killing their connections; returns how
    /// many were killed for being slow.
    fn drop_conns(&self, reg: &mut Registry, dead: Vec<(Arc<str>, u64)>) -> u64 {
        let mut slow = 0;
        for (user, id) in dead {
            if let Some(slot) = reg.users.get_mut(&user) {
                if let Some(pos) = slot.conns.iter().position(|c| c.id == id) {
                    let conn = slot.conns.swap_remove(pos);
                    if !conn.tx.is_closed() {
                        slow += 1;
                        tracing::info!(user.id = %user, connection.id = %conn.connection_id, "closing a stream whose queue is full");
                    }
                    conn.kill.cancel();
                    reg.total -= 1;
                }
                if slot.conns.is_empty() {
                    reg.users.remove(&user);
                }
            }
        }
        slow
    }

    /// Ends the user's streams with this `connection_id` after what is queued; returns how many.
    pub fn disconnect(&self, user: &str, connection_id: &str) -> usize {
        let reg = self.lock();
        let Some(slot) = reg.users.get(user) else { return 0 };
        let mut n = 0;
        for conn in slot.conns.iter().filter(|c| &*c.connection_id == connection_id) {
            if conn.tx.try_send(Out::Close).is_err() {
                conn.kill.cancel();
            }
            n += 1;
        }
        n
    }

    /// Stops accepting streams and ends every open one with `frame` (`SERVER_SHUTDOWN`).
    pub fn shutdown(&self, frame: Bytes) -> usize {
        let mut reg = self.lock();
        reg.accepting = false;
        let mut n = 0;
        for conn in reg.users.values().flat_map(|s| s.conns.iter()) {
            let sent =
                conn.tx.try_send(Out::Frame(frame.clone())).is_ok() && conn.tx.try_send(Out::Close).is_ok();
            if !sent {
                conn.kill.cancel();
            }
            n += 1;
        }
        n
    }

    /// (connected users, open streams) on this node.
    pub fn counts(&self) -> (usize, usize) {
        let reg = self.lock();
        (reg.users.len(), reg.total)
    }

    pub fn is_connected(&self, user: &str) -> bool {
        self.lock().users.contains_key(user)
    }
}

/// Keeps the live set up to date with a dispatched event.
fn track(live: &mut Option<HashMap<i64, Broadcast>>, body: &EventBody, now: Timestamp) {
    let Some(map) = live else { return };
    match body {
        EventBody::Message { broadcast } if broadcast.is_live_at(now) && !broadcast.fire_and_forget => {
            map.insert(broadcast.id, broadcast.clone());
            if map.len() > MAX_LIVE_TRACKED {
                *live = None;
            }
        }
        EventBody::MessageRemoved { broadcast_id, .. } => {
            map.remove(broadcast_id);
        }
        _ => {}
    }
}

/// Whether a live broadcast addresses `user` (true when the live set is not known). Drops the
/// broadcasts that expired.
fn may_have_pending(live: &mut Option<HashMap<i64, Broadcast>>, user: &User) -> bool {
    let Some(map) = live else { return true };
    let now = Timestamp::now();
    map.retain(|_, b| b.expires_at.is_none_or(|e| e > now));
    map.values().any(|b| b.target.includes(user))
}

/// The broadcasts that `entries` remove, or that `user` reads.
fn gone_for<'a>(entries: impl Iterator<Item = &'a Logged>, user: &User) -> HashSet<i64> {
    entries
        .filter_map(|l| match &l.event.body {
            EventBody::MessageRemoved { broadcast_id, .. } => Some(*broadcast_id),
            EventBody::ReadReceipt { broadcast_id, user_id, .. } if user_id == user.user_id.as_str() => {
                Some(*broadcast_id)
            }
            _ => None,
        })
        .collect()
}

/// Calls `f` for each connected user the event concerns.
fn for_each_recipient(reg: &mut Registry, body: &EventBody, mut f: impl FnMut(&mut Slot)) {
    use herald_domain::TargetType;
    let listed: Option<&[String]> = match body {
        EventBody::ReadReceipt { user_id, .. } => Some(std::slice::from_ref(user_id)),
        EventBody::Message { broadcast } if broadcast.target.target_type == TargetType::Selected => {
            Some(&broadcast.target.target_ids)
        }
        EventBody::MessageRemoved { target, .. } if target.target_type == TargetType::Selected => {
            Some(&target.target_ids)
        }
        _ => None,
    };
    match listed {
        // Few listed users: look each one up instead of scanning every stream.
        Some(ids) => {
            for id in ids {
                if let Some(slot) = reg.users.get_mut(id.as_str()) {
                    f(slot);
                }
            }
        }
        None => {
            for slot in reg.users.values_mut() {
                if body.concerns(&slot.profile) {
                    f(slot);
                }
            }
        }
    }
}

/// Queues `frame` (then `Close` when `close_after`) on each of the slot's streams; a stream whose
/// queue is full or gone is listed in `dead`. Returns whether any stream took the frame.
fn send_all(slot: &mut Slot, frame: &Bytes, close_after: bool, dead: &mut Vec<(Arc<str>, u64)>) -> bool {
    let mut any = false;
    for conn in &slot.conns {
        match conn.tx.try_send(Out::Frame(frame.clone())) {
            Ok(()) => {
                any = true;
                if close_after && conn.tx.try_send(Out::Close).is_err() {
                    conn.kill.cancel();
                }
            }
            Err(_) => dead.push((slot.user.clone(), conn.id)),
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::UserId;

    fn hub() -> Arc<Hub> {
        let config =
            HubConfig { queue: 8, per_user: 4, total: 100, window_entries: 100, window_bytes: 1 << 20 };
        Arc::new(Hub::new(config, 10, Arc::default()))
    }

    fn replay_of(hub: &Arc<Hub>, user: &str, profile_as_of: i64) -> Replay {
        let profile = User::bare(UserId::parse("userId", user).unwrap());
        match hub.register(profile, profile_as_of, Arc::from("c"), CancellationToken::new(), None) {
            Admission::Accepted(reg) => reg.replay,
            _ => panic!("not admitted"),
        }
    }

    #[test]
    fn a_fresh_stream_skips_the_pending_query_only_with_a_current_profile() {
        let hub = hub();
        assert!(matches!(replay_of(&hub, "a", 10), Replay::Fresh), "live broadcasts unknown: ask");
        hub.track_live(Vec::new());
        assert!(matches!(replay_of(&hub, "b", 10), Replay::NothingPending));
        let user = User::bare(UserId::parse("userId", "c").unwrap());
        hub.dispatch(Arc::new(Event { seq: 11, body: EventBody::UserChanged { user, deleted: false } }));
        assert!(
            matches!(replay_of(&hub, "c", 10), Replay::Fresh),
            "a profile read before a user change may miss a role: ask the store"
        );
        assert!(matches!(replay_of(&hub, "c", 11), Replay::NothingPending));
    }
}

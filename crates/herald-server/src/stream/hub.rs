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
use herald_domain::{Broadcast, Event, EventBody, TargetType, Timestamp, User};
use herald_store::{DeliveryMark, StoreError, StoreResult};
use smallvec::SmallVec;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
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
    /// Whether a connect may take a user's profile from the hub instead of the directory: only
    /// when nothing but this node writes the directory (one node on its own SQLite file), so every
    /// change is made here and announced with [`Hub::writing`].
    pub serve_profiles: bool,
}

struct Conn {
    id: u64,
    connection_id: Arc<str>,
    tx: queue::Sender,
    /// Closes the stream's TCP connection at once (a stuck client may never read another byte).
    kill: CancellationToken,
    /// The profile this stream registered with, when read from the directory after every user
    /// change dispatched here and different from the slot's: most often a change committed and
    /// not logged yet. Messages reach this stream if they address either profile, until the user's
    /// next change is dispatched (whichever it is: two changes committed before the first is
    /// logged leave a stream of the second on the first's profile until the second is logged).
    ahead: Option<Box<User>>,
}

impl Conn {
    /// Whether this stream is ahead of its slot's profile with one that `body` concerns.
    fn ahead_for(&self, body: &EventBody) -> bool {
        self.ahead.as_deref().is_some_and(|p| body.concerns(p))
    }
}

struct Slot {
    user: Arc<str>,
    profile: User,
    /// Inline: the pass over every slot for an `ALL` broadcast reads no allocation of its own
    /// for the usual one stream per user.
    conns: SmallVec<[Conn; 1]>,
    /// Known to have had every live message that addresses it up to some position (nothing was
    /// pending when a stream registered), and every one since was queued on one of its streams:
    /// `gap` says one was not (no stream took it) or the profile changed.
    settled: bool,
    gap: bool,
    /// `profile` is the directory's: read after the last user change dispatched, with no write
    /// made here meanwhile or since (see [`Hub::known_profile`]).
    vouched: bool,
}

impl Slot {
    /// Every message logged so far that addresses the user was queued for it.
    fn complete(&self) -> bool {
        self.settled && !self.gap
    }
}

/// A user whose last stream on this node ended. With `upto`, every message that addresses
/// `profile` up to that position was queued for them: a fresh stream of theirs skips the pending
/// query unless a live broadcast logged after `upto` addresses them. When `vouched` (as in
/// [`Slot`]), their next stream skips the directory.
struct Departed {
    profile: User,
    upto: Option<i64>,
    vouched: bool,
}

/// A broadcast that may be live, with the position of its message (for those live when the hub
/// started: the head it started from, which is at or after it).
struct Live {
    seq: i64,
    broadcast: Broadcast,
}

struct Registry {
    head: i64,
    users: HashMap<Arc<str>, Slot>,
    total: usize,
    accepting: bool,
    window: Window,
    /// Every broadcast that may be live at `head` (a superset), when known: a fresh stream whose
    /// user none of them addresses has no pending message, and skips the store.
    live: Option<HashMap<i64, Live>>,
    /// The position of the last user change dispatched: a profile read before it may be stale.
    last_user_change: i64,
    /// Directory writes made on this node ([`Hub::writing`]): a profile read while one was made
    /// may be older than it.
    writes: u64,
    /// Users whose streams all ended (see [`Departed`]); at most as many as the node may hold
    /// streams, emptied when full.
    departed: HashMap<Arc<str>, Departed>,
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

/// Where the hub was when a profile was read: a user change dispatched after `head`, or a
/// directory write made here after `writes`, may be missing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileMark {
    pub head: i64,
    pub writes: u64,
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

/// A directory write on this node, announced to the hub when dropped ([`Hub::writing`]).
#[must_use]
struct ProfileWrite {
    hub: Arc<Hub>,
    user: String,
}

impl Drop for ProfileWrite {
    fn drop(&mut self) {
        self.hub.profile_written(&self.user);
    }
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
                writes: 0,
                departed: HashMap::new(),
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

    /// Where the hub is before a profile is read from the directory (see [`ProfileMark`]).
    pub fn profile_mark(&self) -> ProfileMark {
        let reg = self.lock();
        ProfileMark { head: reg.head, writes: reg.writes }
    }

    /// How many active broadcasts to read to start tracking them: one more than it tracks.
    pub const LIVE_PAGE: u32 = MAX_LIVE_TRACKED as u32 + 1;

    /// Starts tracking live broadcasts from `active`: every broadcast active in the store, read
    /// after the head this hub started from (and before any dispatch). Until then, and with more
    /// than [`MAX_LIVE_TRACKED`], every fresh stream asks the store for its pending messages.
    pub fn track_live(&self, active: Vec<Broadcast>) {
        let mut reg = self.lock();
        let seq = reg.head;
        let live: HashMap<i64, Live> = active
            .into_iter()
            .filter(|b| !b.fire_and_forget)
            .map(|broadcast| (broadcast.id, Live { seq, broadcast }))
            .collect();
        reg.live = (live.len() <= MAX_LIVE_TRACKED).then_some(live);
    }

    /// Registers a stream of `profile`, read (from the directory, or from this hub) at
    /// `profile_as_of`.
    pub fn register(
        self: &Arc<Self>,
        profile: User,
        profile_as_of: ProfileMark,
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
        // Up to where the user is known to have had every message that addresses its profile.
        let had_upto = match (reg.users.get(&user), reg.departed.get(&user)) {
            (Some(slot), _) if slot.complete() && slot.profile == profile => Some(head),
            (None, Some(d)) if d.profile == profile => d.upto,
            _ => None,
        };
        let replay = match last_event_id {
            None if reg.last_user_change <= profile_as_of.head
                && !may_have_pending(&mut reg.live, &profile, had_upto) =>
            {
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
        reg.departed.remove(&user);
        let nothing_pending = matches!(replay, Replay::NothingPending);
        // A profile read before the last user change dispatched may miss a role: the store's
        // answer for the current one does not vouch for a slot that holds it.
        let stale = reg.last_user_change > profile_as_of.head;
        // Nor does one read while a directory write was made here vouch for the profile.
        let vouched = self.config.serve_profiles && !stale && reg.writes == profile_as_of.writes;
        let ahead = match reg.users.get(&user) {
            Some(slot) if !stale && slot.profile != profile => Some(Box::new(profile.clone())),
            _ => None,
        };
        let slot = match reg.users.entry(user.clone()) {
            Entry::Vacant(e) => e.insert(Slot {
                user: user.clone(),
                profile,
                conns: SmallVec::new(),
                settled: nothing_pending,
                gap: stale,
                vouched,
            }),
            Entry::Occupied(e) => {
                let slot = e.into_mut();
                if nothing_pending && slot.profile == profile {
                    // Nothing that addresses the user is pending at the head, and every later
                    // message comes to this slot: whatever gap it had is behind it.
                    (slot.settled, slot.gap) = (true, false);
                }
                slot.vouched |= vouched && slot.profile == profile;
                slot
            }
        };
        slot.conns.push(Conn { id, connection_id, tx, kill, ahead });
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

    /// The user's profile as the directory has it at the returned position (the head), when this
    /// node read it from the directory since the user's last change and the hub serves profiles:
    /// a connect then skips the directory.
    pub fn known_profile(&self, user: &str) -> Option<(User, ProfileMark)> {
        if !self.config.serve_profiles {
            return None;
        }
        let reg = self.lock();
        let profile = match (reg.users.get(user), reg.departed.get(user)) {
            (Some(slot), _) if slot.vouched => &slot.profile,
            (None, Some(d)) if d.vouched => &d.profile,
            _ => return None,
        };
        let known = (profile.clone(), ProfileMark { head: reg.head, writes: reg.writes });
        drop(reg);
        Metrics::inc(&self.metrics.stream_profiles_from_hub_total);
        Some(known)
    }

    /// Announces a directory write of `user` made on this node when dropped: held across the
    /// whole write by [`Hub::announced`], in a task the caller cannot abandon, so that it counts
    /// only once the write has committed or failed.
    fn writing(self: &Arc<Self>, user: &str) -> ProfileWrite {
        ProfileWrite { hub: self.clone(), user: user.to_owned() }
    }

    /// Runs the directory write `write` of `user` in a task of its own and announces it when it is
    /// over: a caller gone half-way (a client that hung up) would otherwise announce it before its
    /// commit, and a read between the two could vouch for the old profile.
    pub async fn announced<T: Send + 'static>(
        self: &Arc<Self>,
        user: &str,
        write: impl Future<Output = StoreResult<T>> + Send + 'static,
    ) -> StoreResult<T> {
        let announce = self.writing(user);
        let task = tokio::spawn(async move {
            let _announce = announce;
            write.await
        });
        task.await.map_err(StoreError::backend)?
    }

    /// This node has just written the user to the directory: until a later read of the directory
    /// vouches for it again, the hub's copy of the profile may be older than it.
    fn profile_written(&self, user: &str) {
        let mut reg = self.lock();
        reg.writes += 1;
        reg.departed.remove(user);
        if let Some(slot) = reg.users.get_mut(user) {
            slot.vouched = false;
        }
    }

    /// Up to `max` window entries with `after < seq <= upto`, or `None` when the window no longer
    /// holds the first of them.
    pub fn window_page(&self, after: i64, upto: i64, max: usize) -> Option<Vec<Logged>> {
        let reg = self.lock();
        let page = reg.window.range(after, upto)?.take(max).cloned().collect();
        Some(page)
    }

    /// The stream of `guard` found nothing pending for its user up to the head it registered at:
    /// unless a message since was not queued for the user, they have had every one.
    pub fn settled(&self, guard: &ConnGuard) {
        let mut reg = self.lock();
        if let Some(slot) = reg.users.get_mut(&guard.user) {
            // The same slot as at registration (had it ended, messages in between were missed).
            // Its pending query ran on its own profile: one ahead of the slot's vouches for nothing.
            if slot.conns.iter().any(|c| c.id == guard.id && c.ahead.is_none()) {
                slot.settled = true;
            }
        }
    }

    fn unregister(&self, user: &str, id: u64) {
        let mut reg = self.lock();
        let Some(slot) = reg.users.get_mut(user) else { return };
        let before = slot.conns.len();
        slot.conns.retain(|c| c.id != id);
        let removed = before - slot.conns.len();
        if slot.conns.is_empty() {
            remove_slot(&mut reg, user, self.config.total);
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
        track(&mut reg.live, event.seq, &event.body, now);
        let mut dead = Vec::new();
        match &event.body {
            EventBody::UserChanged { user, deleted } => {
                reg.last_user_change = event.seq;
                reg.departed.remove(user.user_id.as_str());
                if let Some(slot) = reg.users.get_mut(user.user_id.as_str()) {
                    slot.profile = if *deleted { User::bare(user.user_id.clone()) } else { user.clone() };
                    // A live broadcast may address the new profile that the old one did not.
                    slot.gap = true;
                    // Until a stream reads the directory again: this change may be older than a
                    // write made here since (and a deleted user's next stream adds them again).
                    slot.vouched = false;
                    for c in &mut slot.conns {
                        c.ahead = None;
                    }
                }
            }
            EventBody::Message { broadcast } if broadcast.is_live_at(now) => {
                // Room for the marks of an `ALL` or `SELECTED` broadcast up front (one per
                // user it reaches; grown a doubling at a time, 15 000 marks were copied over and
                // over during the pass). A role or product may reach few: those grow.
                marks.reserve(match broadcast.target.target_type {
                    TargetType::All => reg.users.len(),
                    TargetType::Selected => broadcast.target.target_ids.len().min(reg.users.len()),
                    TargetType::Role | TargetType::Product => 0,
                });
                let frame = frame.unwrap_or_default();
                let logoff = broadcast.is_force_logoff();
                for_each_recipient(&mut reg, &event.body, |slot, only| {
                    if send_all(slot, &frame, logoff, &mut dead, only) {
                        marks.push(DeliveryMark {
                            broadcast_id: broadcast.id,
                            user_id: slot.user.clone(),
                            at: now,
                            read: broadcast.fire_and_forget,
                        });
                    } else {
                        slot.gap = true;
                    }
                });
            }
            EventBody::Message { .. } => {}
            EventBody::MessageRemoved { .. } | EventBody::ReadReceipt { .. } => {
                let frame = frame.unwrap_or_default();
                for_each_recipient(&mut reg, &event.body, |slot, only| {
                    send_all(slot, &frame, false, &mut dead, only);
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
            send_all(slot, frame, false, &mut dead, None);
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
                    remove_slot(reg, &user, self.config.total);
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

/// Removes the user's slot, whose last stream ended, and remembers them as departed (at most
/// `max` of them: when full, they are all forgotten).
fn remove_slot(reg: &mut Registry, user: &str, max: usize) {
    let Some(slot) = reg.users.remove(user) else { return };
    // Without a live set (more broadcasts live than it follows) `upto` would go unused.
    let upto = (slot.complete() && reg.live.is_some()).then_some(reg.head);
    if upto.is_none() && !slot.vouched {
        return;
    }
    if reg.departed.len() >= max {
        reg.departed.clear();
    }
    reg.departed.insert(slot.user, Departed { profile: slot.profile, upto, vouched: slot.vouched });
}

/// Keeps the live set up to date with a dispatched event.
fn track(live: &mut Option<HashMap<i64, Live>>, seq: i64, body: &EventBody, now: Timestamp) {
    let Some(map) = live else { return };
    match body {
        EventBody::Message { broadcast } if broadcast.is_live_at(now) && !broadcast.fire_and_forget => {
            map.insert(broadcast.id, Live { seq, broadcast: broadcast.clone() });
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

/// Whether a live broadcast addresses `user` whose message is not known to have reached them
/// (they had every one up to `had_upto`): true when the live set is not known. Drops the
/// broadcasts that expired.
fn may_have_pending(live: &mut Option<HashMap<i64, Live>>, user: &User, had_upto: Option<i64>) -> bool {
    let Some(map) = live else { return true };
    let now = Timestamp::now();
    map.retain(|_, l| l.broadcast.expires_at.is_none_or(|e| e > now));
    map.values().any(|l| had_upto.is_none_or(|upto| l.seq > upto) && l.broadcast.target.includes(user))
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

/// Calls `f` for each connected user the event concerns; with `Some(body)` when it concerns only
/// streams registered ahead of the slot's profile (see `Conn::ahead`).
fn for_each_recipient<'b>(
    reg: &mut Registry,
    body: &'b EventBody,
    mut f: impl FnMut(&mut Slot, Option<&'b EventBody>),
) {
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
                    f(slot, None);
                }
            }
        }
        None => {
            for slot in reg.users.values_mut() {
                if body.concerns(&slot.profile) {
                    f(slot, None);
                } else if slot.conns.iter().any(|c| c.ahead_for(body)) {
                    f(slot, Some(body));
                }
            }
        }
    }
}

/// Queues `frame` (then `Close` when `close_after`) on each of the slot's streams; a stream whose
/// queue is full or gone is listed in `dead`. Returns whether any stream took the frame. With
/// `only_ahead`, only the streams registered ahead of the slot's profile that it concerns take it.
fn send_all(
    slot: &mut Slot,
    frame: &Bytes,
    close_after: bool,
    dead: &mut Vec<(Arc<str>, u64)>,
    only_ahead: Option<&EventBody>,
) -> bool {
    let mut any = false;
    for conn in &slot.conns {
        if only_ahead.is_some_and(|b| !conn.ahead_for(b)) {
            continue;
        }
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
    use herald_domain::{command, CreateBroadcastRequest, UserId};

    fn hub() -> Arc<Hub> {
        let config = HubConfig {
            queue: 8,
            per_user: 4,
            total: 100,
            window_entries: 100,
            window_bytes: 1 << 20,
            serve_profiles: true,
        };
        Arc::new(Hub::new(config, 10, Arc::default()))
    }

    fn profile(user: &str, roles: &[&str]) -> User {
        User {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..User::bare(UserId::parse("userId", user).unwrap())
        }
    }

    /// Registers a stream of `profile` read at `mark`, and keeps it open.
    fn register_at(hub: &Arc<Hub>, profile: User, mark: ProfileMark) -> Registration {
        match hub.register(profile, mark, Arc::from("c"), CancellationToken::new(), None) {
            Admission::Accepted(reg) => reg,
            _ => panic!("not admitted"),
        }
    }

    /// Registers a stream of `profile` read after position `profile_as_of` (and before any
    /// directory write), and keeps it open.
    fn register(hub: &Arc<Hub>, profile: User, profile_as_of: i64) -> Registration {
        register_at(hub, profile, ProfileMark { head: profile_as_of, writes: 0 })
    }

    /// Registers a stream of `user` (no roles) and keeps it open.
    fn open(hub: &Arc<Hub>, user: &str) -> Registration {
        register(hub, profile(user, &[]), 0)
    }

    /// How a stream of `user` (no roles) would start; the stream ends at once.
    fn replay_of(hub: &Arc<Hub>, user: &str, profile_as_of: i64) -> Replay {
        register(hub, profile(user, &[]), profile_as_of).replay
    }

    /// Dispatches one broadcast more than a stream's queue holds (ids from `id`, positions from
    /// `seq`): an open stream that reads none of them is closed.
    fn overflow(hub: &Arc<Hub>, id: i64, seq: i64) {
        for i in 0..=hub.config.queue as i64 {
            hub.dispatch(message(id + i, seq + i));
        }
    }

    /// A broadcast live now, to `target_type` (`target_ids`), logged at `seq`.
    fn message_to(id: i64, seq: i64, target_type: &str, target_ids: &[&str]) -> Arc<Event> {
        let now = Timestamp::now();
        let req = CreateBroadcastRequest {
            sender_id: Some("admin".into()),
            content: Some("hello".into()),
            target_type: Some(target_type.into()),
            target_ids: (!target_ids.is_empty()).then(|| target_ids.iter().map(|t| t.to_string()).collect()),
            ..Default::default()
        };
        let broadcast = command::create(req.validate(now).unwrap(), id, uuid::Uuid::nil(), now).state;
        Arc::new(Event { seq, body: EventBody::Message { broadcast } })
    }

    /// An `ALL` broadcast, live now, logged at `seq`.
    fn message(id: i64, seq: i64) -> Arc<Event> {
        message_to(id, seq, "ALL", &[])
    }

    /// `user` changed to `profile`, logged at `seq`.
    fn user_changed(seq: i64, user: User) -> Arc<Event> {
        Arc::new(Event { seq, body: EventBody::UserChanged { user, deleted: false } })
    }

    /// Frames queued on `reg`'s stream so far.
    fn queued(reg: &mut Registration) -> usize {
        std::iter::from_fn(|| reg.rx.try_recv().ok()).filter(|o| matches!(o, Out::Frame(_))).count()
    }

    /// A stream opened with a profile newer than the hub's (a role given and committed, its change
    /// not logged yet) gets what that role brings from messages logged before the change, which its
    /// pending query cannot see (they come after its head); the user's other stream does not.
    #[test]
    fn a_stream_ahead_of_the_logged_profile_gets_what_its_new_role_brings() {
        let hub = hub();
        let mut before = register(&hub, profile("a", &[]), 10);
        let mut ahead = register(&hub, profile("a", &["R"]), 10);
        hub.dispatch(message_to(1, 11, "ROLE", &["R"]));
        assert_eq!(queued(&mut ahead), 1, "the new role's broadcast");
        assert_eq!(queued(&mut before), 0, "read before the role was given");
        hub.dispatch(message_to(2, 12, "ROLE", &["S"]));
        assert_eq!(queued(&mut ahead) + queued(&mut before), 0, "a role neither profile has");
        hub.dispatch(user_changed(13, profile("a", &["R"])));
        hub.dispatch(message_to(3, 14, "ROLE", &["R"]));
        assert_eq!((queued(&mut ahead), queued(&mut before)), (1, 1), "once logged, the user's profile");
    }

    #[test]
    fn a_fresh_stream_skips_the_pending_query_only_with_a_current_profile() {
        let hub = hub();
        assert!(matches!(replay_of(&hub, "a", 10), Replay::Fresh), "live broadcasts unknown: ask");
        hub.track_live(Vec::new());
        assert!(matches!(replay_of(&hub, "b", 10), Replay::NothingPending));
        hub.dispatch(user_changed(11, profile("c", &[])));
        assert!(
            matches!(replay_of(&hub, "c", 10), Replay::Fresh),
            "a profile read before a user change may miss a role: ask the store"
        );
        assert!(matches!(replay_of(&hub, "c", 11), Replay::NothingPending));
    }

    #[test]
    fn a_user_who_had_every_live_message_reconnects_without_asking_the_store() {
        let hub = hub();
        hub.track_live(Vec::new());
        let stream = open(&hub, "a");
        assert!(matches!(stream.replay, Replay::NothingPending));
        hub.dispatch(message(1, 11));
        assert!(
            matches!(replay_of(&hub, "a", 0), Replay::NothingPending),
            "a second stream: the first one took broadcast 1"
        );
        drop(stream);
        assert!(matches!(replay_of(&hub, "a", 0), Replay::NothingPending), "gone, but had broadcast 1");
        assert!(matches!(replay_of(&hub, "b", 0), Replay::Fresh), "never here: ask");
        hub.dispatch(message(2, 12));
        assert!(matches!(replay_of(&hub, "a", 0), Replay::Fresh), "broadcast 2 came after they left");
    }

    #[test]
    fn a_message_no_stream_of_the_user_took_makes_them_ask_the_store() {
        let hub = hub();
        hub.track_live(Vec::new());
        let stream = open(&hub, "a");
        overflow(&hub, 1, 11);
        assert!(!hub.is_connected("a"), "the full queue closed the stream");
        drop(stream);
        assert!(matches!(replay_of(&hub, "a", 0), Replay::Fresh), "broadcast 9 never reached them");
    }

    #[test]
    fn a_changed_profile_makes_a_departed_user_ask_the_store() {
        let hub = hub();
        hub.track_live(Vec::new());
        drop(open(&hub, "a"));
        hub.dispatch(message(1, 11));
        hub.dispatch(user_changed(12, profile("x", &[])));
        assert!(matches!(replay_of(&hub, "a", 12), Replay::Fresh), "broadcast 1 came after they left");
        let stream = register(&hub, profile("a", &[]), 12);
        hub.settled(&stream.guard);
        hub.dispatch(message(2, 13));
        drop(stream);
        assert!(matches!(replay_of(&hub, "a", 13), Replay::NothingPending), "had broadcasts 1 and 2");
        hub.dispatch(user_changed(14, profile("a", &[])));
        assert!(matches!(replay_of(&hub, "a", 14), Replay::Fresh), "their profile changed since");
    }

    #[test]
    fn nothing_pending_in_the_store_counts_only_for_the_stream_that_asked() {
        let hub = hub();
        hub.track_live(Vec::new());
        hub.dispatch(message(1, 11));
        let asked = open(&hub, "a");
        assert!(matches!(asked.replay, Replay::Fresh), "broadcast 1 is live: ask");
        hub.settled(&asked.guard);
        drop(asked);
        assert!(matches!(replay_of(&hub, "a", 0), Replay::NothingPending), "the store had nothing for them");

        // A stream closed for a full queue while its query ran; a new one opened meanwhile.
        let closed = open(&hub, "b");
        overflow(&hub, 2, 12);
        assert!(!hub.is_connected("b"), "the full queue closed the stream");
        let other = open(&hub, "b");
        hub.settled(&closed.guard);
        drop(other);
        assert!(matches!(replay_of(&hub, "b", 0), Replay::Fresh), "what the closed stream missed is pending");
    }

    #[test]
    fn a_stream_registered_with_a_stale_profile_never_vouches_for_the_user() {
        let hub = hub();
        hub.track_live(Vec::new());
        hub.dispatch(message_to(1, 11, "ROLE", &["R"]));
        hub.dispatch(user_changed(12, profile("a", &[])));
        // Read before the change: the store's answer (for the profile without R) says nothing.
        let stale = register(&hub, profile("a", &["R"]), 11);
        assert!(matches!(stale.replay, Replay::Fresh));
        hub.settled(&stale.guard);
        drop(stale);
        let again = register(&hub, profile("a", &["R"]), 12);
        assert!(matches!(again.replay, Replay::Fresh), "broadcast 1 (role R) may never have reached them");
    }

    #[test]
    fn a_role_gained_while_connected_makes_the_next_stream_ask() {
        let hub = hub();
        hub.track_live(Vec::new());
        let first = register(&hub, profile("a", &[]), 10);
        assert!(matches!(first.replay, Replay::NothingPending));
        hub.dispatch(message_to(1, 11, "ROLE", &["R"]));
        let gained = profile("a", &["R"]);
        hub.dispatch(user_changed(12, gained.clone()));
        let second = register(&hub, gained.clone(), 12);
        assert!(
            matches!(second.replay, Replay::Fresh),
            "broadcast 1 now addresses them and never reached them"
        );
        drop((first, second));
        assert!(
            matches!(register(&hub, gained, 12).replay, Replay::Fresh),
            "nor did they have it when they left"
        );
    }

    fn known(hub: &Hub, user: &str) -> Option<User> {
        hub.known_profile(user).map(|(profile, _)| profile)
    }

    #[test]
    fn a_user_seen_here_since_their_last_change_skips_the_directory() {
        let hub = hub();
        let a = profile("a", &["R"]);
        let stream = register_at(&hub, a.clone(), hub.profile_mark());
        assert_eq!(known(&hub, "a"), Some(a.clone()), "connected");
        drop(stream);
        assert_eq!(known(&hub, "a"), Some(a.clone()), "departed");
        let (_, mark) = hub.known_profile("a").unwrap();
        assert_eq!(mark, hub.profile_mark(), "current at the head");
        assert_eq!(
            hub.metrics.stream_profiles_from_hub_total.load(Ordering::Relaxed),
            3,
            "three answers from the hub"
        );
        hub.dispatch(user_changed(11, profile("a", &["S"])));
        assert_eq!(known(&hub, "a"), None, "changed after they left: read the directory");
        assert_eq!(known(&hub, "z"), None, "never seen here");

        let b = register_at(&hub, profile("b", &[]), hub.profile_mark());
        hub.dispatch(user_changed(12, profile("b", &["S"])));
        assert_eq!(known(&hub, "b"), None, "changed while connected: read the directory once");
        let again = register_at(&hub, profile("b", &["S"]), hub.profile_mark());
        assert_eq!(known(&hub, "b"), Some(profile("b", &["S"])), "read again, and the same as the change");
        let deleted = User::bare(UserId::parse("userId", "b").unwrap());
        hub.dispatch(Arc::new(Event {
            seq: 13,
            body: EventBody::UserChanged { user: deleted, deleted: true },
        }));
        assert_eq!(known(&hub, "b"), None, "deleted: the directory adds them again");
        drop((b, again));

        // A stream read newer than the slot's profile (a change not dispatched yet): the slot
        // holds the older one, which the read does not vouch for.
        let c = register_at(&hub, profile("c", &[]), hub.profile_mark());
        hub.dispatch(user_changed(14, profile("c", &["R"])));
        let newer = register_at(&hub, profile("c", &["R", "S"]), hub.profile_mark());
        assert_eq!(known(&hub, "c"), None, "the slot's profile is older than the last read");
        drop((c, newer));
    }

    #[test]
    fn a_profile_that_may_miss_a_change_is_read_from_the_directory() {
        let hub = hub();
        let a = register_at(&hub, profile("a", &[]), hub.profile_mark());
        drop(hub.writing("a"));
        assert_eq!(known(&hub, "a"), None, "written here and not dispatched yet");
        // Two writes here, then the first one's change dispatched: the second is still to come.
        drop(hub.writing("a"));
        hub.dispatch(user_changed(11, profile("a", &["R"])));
        assert_eq!(known(&hub, "a"), None, "an older change than the last write");
        drop(a);

        // Read before a write made here, registered after it.
        let mark = hub.profile_mark();
        drop(hub.writing("c"));
        let c = register_at(&hub, profile("c", &[]), mark);
        assert_eq!(known(&hub, "c"), None, "the read may have missed the write");
        drop(c);
        assert_eq!(known(&hub, "c"), None, "nor once departed");

        // Read before a user change dispatched (any user's).
        let d = register(&hub, profile("d", &[]), 10);
        assert_eq!(known(&hub, "d"), None, "read before the change at 11");
        drop(d);

        let config = HubConfig { serve_profiles: false, ..hub.config.clone() };
        let other = Arc::new(Hub::new(config, 10, Arc::default()));
        drop(register_at(&other, profile("a", &[]), other.profile_mark()));
        assert_eq!(known(&other, "a"), None, "something else writes the directory too");
        assert!(
            !other.lock().departed.get("a").is_some_and(|d| d.vouched),
            "nor is the profile kept as if it could be served"
        );
    }
}

//! The storage seam: the [`Store`] trait every backend (SQLite, PostgreSQL) implements, and the
//! plain types it speaks.
//!
//! A backend owns durability and the outbox: every state change that clients must hear about is
//! committed together with its event in one transaction, and [`Store::relay_batch`] hands the
//! relay committed events with their log positions. Backends wake the relay and the scheduler
//! through [`Signals`] after they commit. Both backends implement it through `herald-store-sql`.

mod types;

pub use types::*;

use async_trait::async_trait;
use herald_domain::record::DecodeError;
use herald_domain::{Broadcast, Event, EventBody, NewBroadcast, Refusal, Timestamp, User, UserId};
use std::sync::Arc;

pub type StoreResult<T> = Result<T, StoreError>;

/// The cause of a storage failure, kept whole for the log (shared: results are cloned to every
/// waiter of a group commit).
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("broadcast {0} does not exist")]
    BroadcastNotFound(i64),
    /// A domain rule refused the change (not addressed to the user, not active yet, final state).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The database cannot be reached or refused the connection; callers answer 503.
    #[error("database unavailable")]
    Unavailable(#[source] Cause),
    #[error("database error")]
    Backend(#[source] Cause),
    /// A stored value this build cannot read (a corrupt row, an event record of an unknown version).
    #[error("stored data cannot be read")]
    Corrupt(#[source] Cause),
}

impl StoreError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Arc::new(e))
    }

    pub fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Corrupt(Arc::new(e))
    }

    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Arc::new(e))
    }
}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        Self::corrupt(e)
    }
}

impl From<herald_domain::TransitionError> for StoreError {
    fn from(e: herald_domain::TransitionError) -> Self {
        Self::Refused(Refusal::Transition(e))
    }
}

/// sqlx's errors, classified once: connection-level failures (server down, restarting, out of
/// connections) are `Unavailable`, so the API answers 503 and the background tasks retry.
#[cfg(feature = "sqlx")]
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let unavailable = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // PostgreSQL codes 08: connection exception; 57P: operator intervention; 53: resources.
            sqlx::Error::Database(db) => {
                db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c.starts_with("53"))
            }
            _ => false,
        };
        if unavailable {
            Self::unavailable(e)
        } else {
            Self::backend(e)
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Wake-ups for the relay (new outbox rows) and the scheduler (new due times).
    fn signals(&self) -> &Signals;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;

    /// Stops background work and closes connections (graceful shutdown).
    async fn close(&self);

    // --- user directory ---

    /// Creates or replaces a user's roles and products; emits `USER_CHANGED`.
    async fn put_user(&self, user: &User, now: Timestamp) -> StoreResult<User>;
    /// Returns the user, adding it with no roles or products if it is not in the directory yet.
    async fn ensure_user(&self, id: &UserId, now: Timestamp) -> StoreResult<User>;
    /// Adds the users that are missing; existing users are left as they are. Returns how many were added.
    async fn seed_users(&self, users: &[User], now: Timestamp) -> StoreResult<usize>;
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>>;
    /// Removes a user from the directory (its delivery history stays); emits `USER_CHANGED`.
    async fn delete_user(&self, id: &str, now: Timestamp) -> StoreResult<bool>;
    async fn user_ids(&self) -> StoreResult<Vec<String>>;

    // --- broadcasts (admin) ---

    /// Stores a validated broadcast; when it is active at once its `MESSAGE` event is in the outbox
    /// in the same transaction.
    async fn create_broadcast(&self, new: &NewBroadcast, now: Timestamp) -> StoreResult<Broadcast>;
    async fn get_broadcast(&self, id: i64) -> StoreResult<Option<Broadcast>>;
    async fn list_broadcasts(
        &self,
        filter: ListFilter,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Broadcast>>;
    /// How many broadcasts the filter lists in all.
    async fn count_broadcasts(&self, filter: ListFilter) -> StoreResult<i64>;
    /// Cancels; `MESSAGE_REMOVED` goes out when the broadcast was active.
    async fn cancel_broadcast(&self, id: i64, now: Timestamp) -> StoreResult<Broadcast>;
    /// Counts over each broadcast's current audience, from the per-user records, in the order given
    /// (one query per target type, however many broadcasts).
    async fn counts_of(&self, broadcasts: &[Broadcast]) -> StoreResult<Vec<Counts>>;
    /// [`Store::counts_of`] for one broadcast.
    async fn counts(&self, broadcast: &Broadcast) -> StoreResult<Counts> {
        Ok(self.counts_of(std::slice::from_ref(broadcast)).await?.pop().unwrap_or_default())
    }
    /// How many users the broadcast's audience holds now (its `targeted` count, without reading
    /// any delivery record: what a just-created broadcast needs).
    async fn audience_size(&self, broadcast: &Broadcast) -> StoreResult<i64>;
    /// One row per audience member, ordered by user id, after `after`.
    async fn deliveries(
        &self,
        broadcast: &Broadcast,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>>;

    // --- a user's messages ---

    /// Active, non-fire-and-forget broadcasts addressed to the user and unread, newest first.
    async fn inbox(
        &self,
        user: &str,
        before: Option<i64>,
        limit: u32,
        now: Timestamp,
    ) -> StoreResult<Vec<InboxItem>>;
    /// The inbox messages never delivered to the user whose `MESSAGE` event is at or before
    /// `upto_seq`, as `(position, broadcast id)` in log order: the newest 1 000 at most. A stream
    /// fetches them in pages ([`Store::live_unread`]) as its socket drains.
    async fn pending_ids(&self, user: &str, upto_seq: i64, now: Timestamp) -> StoreResult<Vec<(i64, i64)>>;
    /// The broadcasts among `ids` the user may still be sent: active, not expired, not
    /// fire-and-forget and not read by the user (any order).
    async fn live_unread(&self, user: &str, ids: &[i64], now: Timestamp) -> StoreResult<Vec<Broadcast>>;
    async fn unread_count(&self, user: &str, now: Timestamp) -> StoreResult<i64>;
    /// Marks read (idempotent); the first time emits `READ_RECEIPT`. Returns the read time.
    async fn mark_read(&self, user: &str, broadcast_id: i64, now: Timestamp) -> StoreResult<Timestamp>;
    /// Marks every inbox message read; returns how many were newly read.
    async fn mark_all_read(&self, user: &str, now: Timestamp) -> StoreResult<u64>;
    /// Sets `renderedAt` the first time.
    async fn ack_visibility(&self, user: &str, broadcast_id: i64, now: Timestamp) -> StoreResult<()>;
    /// Upserts delivery marks in one batch; existing times are kept (first delivery wins). The
    /// marks must be unique per (broadcast, user); sorted by (broadcast, user), as the recorder
    /// sends them, they are cheapest to write. They may reach the disk only with a later durable
    /// commit (SQLite): an OS crash before it can take them back, and their messages are then
    /// delivered again, as the delivery guarantee allows (fire-and-forget ones go uncounted).
    async fn record_deliveries(&self, marks: &[DeliveryMark]) -> StoreResult<()>;

    // --- scheduler ---

    /// The earliest pending activation or expiry.
    async fn next_due(&self) -> StoreResult<Option<Timestamp>>;
    /// Activates and expires everything due at `now`, with their events.
    async fn run_due(&self, now: Timestamp) -> StoreResult<DueWork>;

    // --- relay and replay ---

    /// Up to `limit` committed events after position `after`, in position order, for the relay.
    /// PostgreSQL first moves committed outbox rows into the log, assigning their positions;
    /// SQLite assigned them at write time.
    async fn relay_batch(&self, after: i64, limit: u32) -> StoreResult<Vec<Event>>;
    /// Logged events with `after < seq <= upto`, in order, at most `limit`.
    async fn events_after(&self, after: i64, upto: i64, limit: u32) -> StoreResult<Vec<Event>>;
    async fn event_range(&self) -> StoreResult<EventRange>;
    /// Deletes logged events created before `before`; returns how many.
    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64>;

    // --- leadership ---

    /// Takes or renews lease `name` for `holder` until `until`, unless another holder's lease is
    /// still unexpired at `now`. Returns whether `holder` holds it.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives the lease up if `holder` holds it (graceful shutdown: the next leader need not wait).
    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;
    /// Records that `node` is alive at `now`; returns the other nodes seen since `since`.
    async fn node_heartbeat(&self, node: &str, now: Timestamp, since: Timestamp) -> StoreResult<Vec<String>>;

    // --- cluster: the relay's mark, appends, dead letters, open streams ---

    async fn relay_mark(&self) -> StoreResult<RelayMark>;
    async fn set_relay_mark(&self, mark: RelayMark) -> StoreResult<()>;
    /// Appends one event to the log (a redriven dead letter), as any write would.
    async fn append_event(&self, body: &EventBody, now: Timestamp) -> StoreResult<()>;
    /// Keeps a dead letter; `None` when that record (topic, partition, offset) is kept already.
    async fn add_dead_letter(&self, letter: &NewDeadLetter) -> StoreResult<Option<i64>>;
    /// Every dead letter, oldest first.
    async fn dead_letters(&self) -> StoreResult<Vec<DeadLetter>>;
    async fn dead_letter(&self, id: i64) -> StoreResult<Option<DeadLetter>>;
    /// Deletes one dead letter (`Some(id)`) or all; returns how many.
    async fn delete_dead_letters(&self, id: Option<i64>) -> StoreResult<u64>;
    /// Registers an open stream unless its user already holds `limit` streams on the nodes seen
    /// since `live_since`; returns whether it was admitted.
    async fn open_session(&self, session: &Session, limit: usize, live_since: Timestamp)
        -> StoreResult<bool>;
    async fn close_session(&self, key: &str) -> StoreResult<()>;
    /// Asks every node to close a stream (through [`Signals::disconnect`]).
    async fn announce_disconnect(&self, request: &Disconnect) -> StoreResult<()>;
    /// Forgets every stream `node` registered (at its start, or when it is found dead).
    async fn clear_sessions(&self, node: &str) -> StoreResult<u64>;
    /// The user's open streams on the nodes seen since `live_since`.
    async fn sessions_of(&self, user: &str, live_since: Timestamp) -> StoreResult<Vec<Session>>;
    /// How many distinct users hold a stream on the nodes seen since `live_since`.
    async fn session_users(&self, live_since: Timestamp) -> StoreResult<i64>;
}

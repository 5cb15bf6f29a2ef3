//! The storage seam: the [`Store`] trait every backend (SQLite, PostgreSQL) implements, and the
//! plain types it speaks.
//!
//! A backend owns durability and the outbox: every state change that clients must hear about is
//! committed together with its event in one transaction, and [`Store::relay_batch`] turns committed
//! outbox rows into positioned events in the log. Backends wake the relay and the scheduler through
//! [`Signals`] after they commit.

mod types;

pub use types::*;

use async_trait::async_trait;
use herald_domain::{Broadcast, Event, NewBroadcast, Timestamp, User, UserId};

pub type StoreResult<T> = Result<T, StoreError>;

/// Builds users from the ids found and their `(user, role)` and `(user, product)` rows, in id order.
pub fn assemble_users(
    found: Vec<String>,
    roles: Vec<(String, String)>,
    products: Vec<(String, String)>,
) -> StoreResult<Vec<User>> {
    let mut users = std::collections::BTreeMap::new();
    for id in found {
        let user_id = UserId::parse("userId", &id).map_err(|e| StoreError::Backend(e.to_string()))?;
        users.insert(id, User::bare(user_id));
    }
    for (id, role) in roles {
        if let Some(u) = users.get_mut(&id) {
            u.roles.insert(role);
        }
    }
    for (id, product) in products {
        if let Some(u) = users.get_mut(&id) {
            u.products.insert(product);
        }
    }
    Ok(users.into_values().collect())
}

/// Turns a looked-up `(status, addressed to the user)` of broadcast `id` into the error a read or
/// visibility ack gets: not found, not addressed to the user, or not yet active.
pub fn check_targeted(row: Option<(String, bool)>, user: &str, id: i64) -> StoreResult<()> {
    match row {
        None => Err(StoreError::BroadcastNotFound(id)),
        Some((_, false)) => Err(StoreError::NotTargeted { broadcast_id: id, user_id: user.to_owned() }),
        Some((status, true)) if status == herald_domain::BroadcastStatus::Scheduled.as_str() => {
            Err(StoreError::NotYetActive(id))
        }
        Some(_) => Ok(()),
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("broadcast {0} does not exist")]
    BroadcastNotFound(i64),
    #[error("broadcast {broadcast_id} is not addressed to user {user_id}")]
    NotTargeted { broadcast_id: i64, user_id: String },
    #[error(transparent)]
    Transition(#[from] herald_domain::TransitionError),
    #[error("broadcast {0} is scheduled and cannot be read or acknowledged before it is active")]
    NotYetActive(i64),
    /// The database cannot be reached or refused the connection; callers answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Backend(String),
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
    /// Cancels; `MESSAGE_REMOVED` goes out when the broadcast was active.
    async fn cancel_broadcast(&self, id: i64, now: Timestamp) -> StoreResult<Broadcast>;
    /// Counts over the broadcast's current audience, from the per-user records.
    async fn counts(&self, broadcast: &Broadcast) -> StoreResult<Counts>;
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
    /// sends them, they are cheapest to write.
    async fn record_deliveries(&self, marks: &[DeliveryMark]) -> StoreResult<()>;

    // --- scheduler ---

    /// The earliest pending activation or expiry.
    async fn next_due(&self) -> StoreResult<Option<Timestamp>>;
    /// Activates and expires everything due at `now`, with their events.
    async fn run_due(&self, now: Timestamp) -> StoreResult<DueWork>;

    // --- relay and replay ---

    /// Up to `limit` committed events not returned before, in position order. PostgreSQL moves
    /// outbox rows into the log here, assigning positions; SQLite assigned them at write time
    /// and only reads the log.
    async fn relay_batch(&self, limit: u32) -> StoreResult<Vec<Event>>;
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
}

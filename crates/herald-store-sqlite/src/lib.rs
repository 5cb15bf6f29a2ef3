//! Herald's embedded backend: SQLite in WAL mode, one file.
//!
//! Writes go through a pool of exactly one connection, so transactions never contend for
//! SQLite's single write lock (no `SQLITE_BUSY` upgrades); reads use a separate pool and see
//! committed data through WAL snapshots. Because there is one writer, events get their log
//! position in the transaction that writes them (commit order is position order), and the relay
//! just reads what is new: no outbox, no relay transaction.

mod broadcasts;
mod joiner;
mod lease;
mod log;
mod messages;
mod rows;
mod users;

use async_trait::async_trait;
use herald_domain::{Broadcast, Event, NewBroadcast, Timestamp, User, UserId};
use herald_store::{
    Counts, DeliveryMark, DeliveryRow, DueWork, EventRange, InboxItem, ListFilter, Signals, Store,
    StoreError, StoreResult,
};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    signals: Signals,
    new_users: joiner::UserJoiner,
    /// The last position the relay has returned: positions are assigned as events are written,
    /// so the relay only reads the log after it.
    relayed: tokio::sync::Mutex<i64>,
}

fn migrator() -> Migrator {
    let migration = |version, name, sql| {
        Migration::new(version, Cow::Borrowed(name), MigrationType::Simple, Cow::Borrowed(sql), false)
    };
    let migrations = vec![
        migration(1, "initial", include_str!("../migrations/0001_initial.sql")),
        migration(
            2,
            "deliveries by broadcast only",
            include_str!("../migrations/0002_deliveries_by_broadcast_only.sql"),
        ),
        migration(3, "positions at write", include_str!("../migrations/0003_positions_at_write.sql")),
    ];
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

impl SqliteStore {
    /// Opens (creating the file and its directory if missing) and migrates the database at `url`
    /// (`sqlite://path/to/file.db`).
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("bad SQLite URL '{url}': {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged broadcast survives even an OS crash, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(rows::db_err)?;
        migrator().run(&write).await.map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(rows::db_err)?;
        let moved = log::drain_outbox(&write).await?;
        if moved > 0 {
            tracing::info!(events = moved, "moved events left in the outbox into the log");
        }
        let last = log::event_range(&read).await?.last;
        Ok(Self {
            write,
            read,
            signals: Signals::default(),
            new_users: Default::default(),
            relayed: tokio::sync::Mutex::new(last),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn signals(&self) -> &Signals {
        &self.signals
    }

    async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(rows::db_err)?;
        Ok(())
    }

    async fn put_user(&self, user: &User, now: Timestamp) -> StoreResult<User> {
        let out = users::put(&self.write, user, now).await?;
        self.signals.outbox.notify_one();
        Ok(out)
    }

    async fn ensure_user(&self, id: &UserId, now: Timestamp) -> StoreResult<User> {
        if let Some(user) = users::get(&self.read, id.as_str()).await? {
            return Ok(user);
        }
        if self.new_users.insert_bare(&self.write, id.as_str(), now).await? {
            return Ok(User::bare(id.clone()));
        }
        users::get(&self.read, id.as_str()).await?.ok_or_else(|| StoreError::Backend("user vanished".into()))
    }

    async fn seed_users(&self, list: &[User], now: Timestamp) -> StoreResult<usize> {
        users::seed(&self.write, list, now).await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        users::get(&self.read, id).await
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        users::list(&self.read, after, limit).await
    }

    async fn delete_user(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let deleted = users::delete(&self.write, id, now).await?;
        self.signals.outbox.notify_one();
        Ok(deleted)
    }

    async fn user_ids(&self) -> StoreResult<Vec<String>> {
        users::ids(&self.read).await
    }

    async fn create_broadcast(&self, new: &NewBroadcast, now: Timestamp) -> StoreResult<Broadcast> {
        let b = broadcasts::create(&self.write, new, now).await?;
        self.signals.outbox.notify_one();
        if b.scheduled_at.is_some() || b.expires_at.is_some() {
            self.signals.schedule.notify_one();
        }
        Ok(b)
    }

    async fn get_broadcast(&self, id: i64) -> StoreResult<Option<Broadcast>> {
        broadcasts::get(&self.read, id).await
    }

    async fn list_broadcasts(
        &self,
        filter: ListFilter,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Broadcast>> {
        broadcasts::list(&self.read, filter, before, limit).await
    }

    async fn cancel_broadcast(&self, id: i64, now: Timestamp) -> StoreResult<Broadcast> {
        let b = broadcasts::cancel(&self.write, id, now).await?;
        self.signals.outbox.notify_one();
        self.signals.schedule.notify_one();
        Ok(b)
    }

    async fn counts(&self, broadcast: &Broadcast) -> StoreResult<Counts> {
        broadcasts::counts(&self.read, broadcast).await
    }

    async fn audience_size(&self, broadcast: &Broadcast) -> StoreResult<i64> {
        broadcasts::audience_size(&self.read, broadcast).await
    }

    async fn deliveries(
        &self,
        broadcast: &Broadcast,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>> {
        broadcasts::deliveries(&self.read, broadcast, after, limit).await
    }

    async fn inbox(
        &self,
        user: &str,
        before: Option<i64>,
        limit: u32,
        now: Timestamp,
    ) -> StoreResult<Vec<InboxItem>> {
        messages::inbox(&self.read, user, before, limit, now).await
    }

    async fn pending_ids(&self, user: &str, upto_seq: i64, now: Timestamp) -> StoreResult<Vec<(i64, i64)>> {
        messages::pending_ids(&self.read, user, upto_seq, now).await
    }

    async fn live_unread(&self, user: &str, ids: &[i64], now: Timestamp) -> StoreResult<Vec<Broadcast>> {
        messages::live_unread(&self.read, user, ids, now).await
    }

    async fn unread_count(&self, user: &str, now: Timestamp) -> StoreResult<i64> {
        messages::unread_count(&self.read, user, now).await
    }

    async fn mark_read(&self, user: &str, broadcast_id: i64, now: Timestamp) -> StoreResult<Timestamp> {
        let at = messages::mark_read(&self.write, user, broadcast_id, now).await?;
        self.signals.outbox.notify_one();
        Ok(at)
    }

    async fn mark_all_read(&self, user: &str, now: Timestamp) -> StoreResult<u64> {
        let n = messages::mark_all_read(&self.write, user, now).await?;
        self.signals.outbox.notify_one();
        Ok(n)
    }

    async fn ack_visibility(&self, user: &str, broadcast_id: i64, now: Timestamp) -> StoreResult<()> {
        messages::ack_visibility(&self.write, user, broadcast_id, now).await
    }

    async fn record_deliveries(&self, marks: &[DeliveryMark]) -> StoreResult<()> {
        messages::record_deliveries(&self.write, marks).await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        log::next_due(&self.read).await
    }

    async fn run_due(&self, now: Timestamp) -> StoreResult<DueWork> {
        let work = log::run_due(&self.write, now).await?;
        if work != DueWork::default() {
            self.signals.outbox.notify_one();
        }
        Ok(work)
    }

    async fn relay_batch(&self, limit: u32) -> StoreResult<Vec<Event>> {
        let mut relayed = self.relayed.lock().await;
        let events = log::events_after(&self.read, *relayed, i64::MAX, limit).await?;
        if let Some(last) = events.last() {
            *relayed = last.seq;
        }
        Ok(events)
    }

    async fn events_after(&self, after: i64, upto: i64, limit: u32) -> StoreResult<Vec<Event>> {
        log::events_after(&self.read, after, upto, limit).await
    }

    async fn event_range(&self) -> StoreResult<EventRange> {
        log::event_range(&self.read).await
    }

    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        log::prune_events(&self.write, before).await
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        _now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        lease::try_lease(&self.write, name, holder, until).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        lease::release_lease(&self.write, name, holder).await
    }

    async fn node_heartbeat(&self, node: &str, now: Timestamp, since: Timestamp) -> StoreResult<Vec<String>> {
        lease::node_heartbeat(&self.write, node, now, since).await
    }
}

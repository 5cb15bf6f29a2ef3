//! Herald's production backend: PostgreSQL.
//!
//! Every write commits its state change and its outbox event in one transaction and `NOTIFY`s
//! the other nodes; a listener turns those notifications into this process's [`Signals`], so the
//! leader's relay and scheduler wake for writes made on any node.

mod broadcasts;
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
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Pool limits: enough connections for the API, the recorder and the background tasks, and
/// short waits so an unreachable database answers 503 quickly instead of hanging requests.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

pub struct PgStore {
    pool: PgPool,
    signals: Arc<Signals>,
    listener: JoinHandle<()>,
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
    ];
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

impl PgStore {
    /// Wakes this node's relay and scheduler at once after a local write; other nodes hear the
    /// `NOTIFY` instead.
    fn wake(&self) {
        self.signals.outbox.notify_one();
        self.signals.schedule.notify_one();
    }

    /// Connects to `url` (`postgres://…`) and migrates (under an advisory lock, so several nodes
    /// may start at once).
    pub async fn open(url: &str, settings: PoolSettings) -> StoreResult<Self> {
        let statement_timeout = format!("{}ms", settings.statement_timeout.as_millis());
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?
            .application_name("herald")
            .options([("statement_timeout", statement_timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(Duration::from_secs(600))
            .connect_with(options)
            .await
            .map_err(rows::db_err)?;
        migrator().run(&pool).await.map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let signals = Arc::new(Signals::default());
        let listener = tokio::spawn(listen(pool.clone(), signals.clone()));
        Ok(Self { pool, signals, listener })
    }
}

/// Forwards `NOTIFY`s to [`Signals`]. After any (re)connection both signals fire, since
/// notifications sent while disconnected are lost.
async fn listen(pool: PgPool, signals: Arc<Signals>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for notifications; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([rows::OUTBOX_CHANNEL, rows::SCHEDULE_CHANNEL]).await {
            tracing::warn!(error = %e, "cannot listen for notifications; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        signals.outbox.notify_one();
        signals.schedule.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == rows::OUTBOX_CHANNEL => signals.outbox.notify_one(),
                Ok(Some(_)) => signals.schedule.notify_one(),
                Ok(None) => {
                    signals.outbox.notify_one();
                    signals.schedule.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn signals(&self) -> &Signals {
        &self.signals
    }

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(rows::db_err)?;
        Ok(())
    }

    async fn put_user(&self, user: &User, now: Timestamp) -> StoreResult<User> {
        let out = users::put(&self.pool, user, now).await?;
        self.wake();
        Ok(out)
    }

    async fn ensure_user(&self, id: &UserId, now: Timestamp) -> StoreResult<User> {
        if let Some(user) = users::get(&self.pool, id.as_str()).await? {
            return Ok(user);
        }
        users::insert_bare(&self.pool, id, now).await?;
        users::get(&self.pool, id.as_str()).await?.ok_or_else(|| StoreError::Backend("user vanished".into()))
    }

    async fn seed_users(&self, list: &[User], now: Timestamp) -> StoreResult<usize> {
        users::seed(&self.pool, list, now).await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        users::get(&self.pool, id).await
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        users::list(&self.pool, after, limit).await
    }

    async fn delete_user(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let out = users::delete(&self.pool, id, now).await?;
        self.wake();
        Ok(out)
    }

    async fn user_ids(&self) -> StoreResult<Vec<String>> {
        users::ids(&self.pool).await
    }

    async fn create_broadcast(&self, new: &NewBroadcast, now: Timestamp) -> StoreResult<Broadcast> {
        let out = broadcasts::create(&self.pool, new, now).await?;
        self.wake();
        Ok(out)
    }

    async fn get_broadcast(&self, id: i64) -> StoreResult<Option<Broadcast>> {
        broadcasts::get(&self.pool, id).await
    }

    async fn list_broadcasts(
        &self,
        filter: ListFilter,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Broadcast>> {
        broadcasts::list(&self.pool, filter, before, limit).await
    }

    async fn cancel_broadcast(&self, id: i64, now: Timestamp) -> StoreResult<Broadcast> {
        let out = broadcasts::cancel(&self.pool, id, now).await?;
        self.wake();
        Ok(out)
    }

    async fn counts(&self, broadcast: &Broadcast) -> StoreResult<Counts> {
        broadcasts::counts(&self.pool, broadcast).await
    }

    async fn audience_size(&self, broadcast: &Broadcast) -> StoreResult<i64> {
        broadcasts::audience_size(&self.pool, broadcast).await
    }

    async fn deliveries(
        &self,
        broadcast: &Broadcast,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>> {
        broadcasts::deliveries(&self.pool, broadcast, after, limit).await
    }

    async fn inbox(
        &self,
        user: &str,
        before: Option<i64>,
        limit: u32,
        now: Timestamp,
    ) -> StoreResult<Vec<InboxItem>> {
        messages::inbox(&self.pool, user, before, limit, now).await
    }

    async fn pending_ids(&self, user: &str, upto_seq: i64, now: Timestamp) -> StoreResult<Vec<(i64, i64)>> {
        messages::pending_ids(&self.pool, user, upto_seq, now).await
    }

    async fn live_unread(&self, user: &str, ids: &[i64], now: Timestamp) -> StoreResult<Vec<Broadcast>> {
        messages::live_unread(&self.pool, user, ids, now).await
    }

    async fn unread_count(&self, user: &str, now: Timestamp) -> StoreResult<i64> {
        messages::unread_count(&self.pool, user, now).await
    }

    async fn mark_read(&self, user: &str, broadcast_id: i64, now: Timestamp) -> StoreResult<Timestamp> {
        let out = messages::mark_read(&self.pool, user, broadcast_id, now).await?;
        self.wake();
        Ok(out)
    }

    async fn mark_all_read(&self, user: &str, now: Timestamp) -> StoreResult<u64> {
        let out = messages::mark_all_read(&self.pool, user, now).await?;
        self.wake();
        Ok(out)
    }

    async fn ack_visibility(&self, user: &str, broadcast_id: i64, now: Timestamp) -> StoreResult<()> {
        messages::ack_visibility(&self.pool, user, broadcast_id, now).await
    }

    async fn record_deliveries(&self, marks: &[DeliveryMark]) -> StoreResult<()> {
        messages::record_deliveries(&self.pool, marks).await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        log::next_due(&self.pool).await
    }

    async fn run_due(&self, now: Timestamp) -> StoreResult<DueWork> {
        let out = log::run_due(&self.pool, now).await?;
        self.wake();
        Ok(out)
    }

    async fn relay_batch(&self, limit: u32) -> StoreResult<Vec<Event>> {
        log::relay_batch(&self.pool, limit).await
    }

    async fn events_after(&self, after: i64, upto: i64, limit: u32) -> StoreResult<Vec<Event>> {
        log::events_after(&self.pool, after, upto, limit).await
    }

    async fn event_range(&self) -> StoreResult<EventRange> {
        log::event_range(&self.pool).await
    }

    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        log::prune_events(&self.pool, before).await
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        lease::try_lease(&self.pool, name, holder, now, until).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        lease::release_lease(&self.pool, name, holder).await
    }

    async fn node_heartbeat(&self, node: &str, now: Timestamp, since: Timestamp) -> StoreResult<Vec<String>> {
        lease::node_heartbeat(&self.pool, node, now, since).await
    }
}

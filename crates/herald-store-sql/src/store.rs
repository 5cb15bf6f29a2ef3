//! [`SqlStore`]: the [`Store`] a backend gets by handing its [`Dialect`] over.

use crate::dialect::Dialect;
use crate::gather::Gather;
use async_trait::async_trait;
use herald_domain::{Broadcast, Event, EventBody, NewBroadcast, Timestamp, User, UserId};
use herald_store::{
    Counts, DeadLetter, DeliveryMark, DeliveryRow, Disconnect, DueWork, EventRange, InboxItem, ListFilter,
    NewDeadLetter, RelayMark, Session, Signals, Store, StoreError, StoreResult,
};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};
use std::sync::Arc;

/// Commits `tx`, then hands `wake` the backend's wake-ups, in a task of its own: when the caller
/// goes away during the commit (an HTTP request dropped by its client), the commit still finishes
/// (SQLite's thread would finish it anyway) and is still announced, once it has landed. Nothing else
/// would announce it: the relay and the scheduler sleep until a commit wakes them. `wake` runs after
/// a failed commit too, which costs them one look.
async fn commit_then<DB: Database>(
    tx: sqlx::Transaction<'static, DB>,
    signals: Arc<Signals>,
    wake: impl FnOnce(&Signals) + Send + 'static,
) -> StoreResult<()> {
    let committing = tokio::spawn(async move {
        let committed = tx.commit().await;
        wake(&signals);
        committed
    });
    committing.await.map_err(StoreError::backend)??;
    Ok(())
}

pub struct SqlStore<D> {
    pub(crate) d: D,
    /// Directory lookups of stream connects, answered together.
    pub(crate) connecting: Gather<UserId, User>,
    /// Pending-message lookups of fresh streams, answered together.
    pub(crate) pending: Gather<(String, i64), Vec<(i64, i64)>>,
}

impl<D: Dialect> SqlStore<D> {
    pub fn new(dialect: D) -> Self {
        Self { d: dialect, connecting: Gather::default(), pending: Gather::default() }
    }

    pub fn dialect(&self) -> &D {
        &self.d
    }

    /// Commits `tx`, then wakes the relay when it `logged` events (see [`commit_then`]).
    pub(crate) async fn commit_logged(
        &self,
        tx: sqlx::Transaction<'static, D::DB>,
        logged: bool,
    ) -> StoreResult<()> {
        self.commit_waking(tx, logged, false).await
    }

    /// Commits `tx`, then wakes the relay when it `logged` events and the scheduler when a due
    /// time may have moved earlier (see [`commit_then`]).
    pub(crate) async fn commit_waking(
        &self,
        tx: sqlx::Transaction<'static, D::DB>,
        relay: bool,
        scheduler: bool,
    ) -> StoreResult<()> {
        if !relay && !scheduler {
            // Nothing to announce (a scheduler pass that found nothing due, a read already read):
            // no task for it.
            tx.commit().await?;
            return Ok(());
        }
        let signals = self.d.connections().signals.clone();
        commit_then(tx, signals, move |s| {
            if relay {
                s.outbox.notify_one();
            }
            if scheduler {
                s.schedule.notify_one();
            }
        })
        .await
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'c> &'c Pool<D::DB>: Executor<'c, Database = D::DB>,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    for<'r> i64: Encode<'r, D::DB> + Decode<'r, D::DB> + Type<D::DB>,
    for<'r> String: Encode<'r, D::DB> + Decode<'r, D::DB> + Type<D::DB>,
    for<'r> &'r str: Encode<'r, D::DB> + Type<D::DB>,
    for<'r> bool: Encode<'r, D::DB> + Decode<'r, D::DB> + Type<D::DB>,
    for<'r> Option<i64>: Encode<'r, D::DB>,
    for<'r> Option<&'r str>: Encode<'r, D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
{
    fn signals(&self) -> &Signals {
        self.d.signals()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query::<D::DB>("SELECT 1").execute(self.d.reader()).await?;
        Ok(())
    }

    async fn close(&self) {
        self.d.close().await;
    }

    async fn put_user(&self, user: &User, now: Timestamp) -> StoreResult<User> {
        self.put_user_row(user, now).await
    }

    async fn ensure_user(&self, id: &UserId, now: Timestamp) -> StoreResult<User> {
        self.connecting.call(id.clone(), |ids| self.ensure_user_rows(ids, now)).await
    }

    async fn seed_users(&self, users: &[User], now: Timestamp) -> StoreResult<usize> {
        self.seed_user_rows(users, now).await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(self.load_users(&[id.to_owned()]).await?.pop())
    }

    async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        self.list_user_rows(after, limit).await
    }

    async fn delete_user(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        self.delete_user_row(id, now).await
    }

    async fn user_ids(&self) -> StoreResult<Vec<String>> {
        self.all_user_ids().await
    }

    async fn create_broadcast(&self, new: &NewBroadcast, now: Timestamp) -> StoreResult<Broadcast> {
        self.insert_broadcast(new, now).await
    }

    async fn get_broadcast(&self, id: i64) -> StoreResult<Option<Broadcast>> {
        self.broadcast_row(id).await
    }

    async fn list_broadcasts(
        &self,
        filter: ListFilter,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Broadcast>> {
        self.broadcast_rows(filter, before, limit).await
    }

    async fn count_broadcasts(&self, filter: ListFilter) -> StoreResult<i64> {
        self.broadcast_count(filter).await
    }

    async fn cancel_broadcast(&self, id: i64, now: Timestamp) -> StoreResult<Broadcast> {
        self.cancel_row(id, now).await
    }

    async fn counts_of(&self, broadcasts: &[Broadcast]) -> StoreResult<Vec<Counts>> {
        self.audience_counts(broadcasts, true).await
    }

    async fn audience_size(&self, broadcast: &Broadcast) -> StoreResult<i64> {
        let counts = self.audience_counts(std::slice::from_ref(broadcast), false).await?;
        Ok(counts.first().map_or(0, |c| c.targeted))
    }

    async fn deliveries(
        &self,
        broadcast: &Broadcast,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>> {
        self.delivery_rows(broadcast, after, limit).await
    }

    async fn inbox(
        &self,
        user: &str,
        before: Option<i64>,
        limit: u32,
        now: Timestamp,
    ) -> StoreResult<Vec<InboxItem>> {
        self.inbox_rows(user, before, limit, now).await
    }

    async fn pending_ids(&self, user: &str, upto_seq: i64, now: Timestamp) -> StoreResult<Vec<(i64, i64)>> {
        self.pending.call((user.to_owned(), upto_seq), |keys| self.pending_rows(keys, now)).await
    }

    async fn live_unread(&self, user: &str, ids: &[i64], now: Timestamp) -> StoreResult<Vec<Broadcast>> {
        self.live_unread_rows(user, ids, now).await
    }

    async fn unread_count(&self, user: &str, now: Timestamp) -> StoreResult<i64> {
        self.count_unread(user, now).await
    }

    async fn mark_read(&self, user: &str, broadcast_id: i64, now: Timestamp) -> StoreResult<Timestamp> {
        self.read_one(user, broadcast_id, now).await
    }

    async fn mark_all_read(&self, user: &str, now: Timestamp) -> StoreResult<u64> {
        self.read_all(user, now).await
    }

    async fn ack_visibility(&self, user: &str, broadcast_id: i64, now: Timestamp) -> StoreResult<()> {
        self.acknowledge(user, broadcast_id, now).await
    }

    async fn record_deliveries(&self, marks: &[DeliveryMark]) -> StoreResult<()> {
        self.write_marks(marks).await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        self.next_due_time().await
    }

    async fn run_due(&self, now: Timestamp) -> StoreResult<DueWork> {
        self.run_due_work(now).await
    }

    async fn relay_batch(&self, after: i64, limit: u32) -> StoreResult<Vec<Event>> {
        self.d.assign_positions(limit).await?;
        self.events_in(after, i64::MAX, limit).await
    }

    async fn events_after(&self, after: i64, upto: i64, limit: u32) -> StoreResult<Vec<Event>> {
        self.events_in(after, upto, limit).await
    }

    async fn event_range(&self) -> StoreResult<EventRange> {
        self.log_range().await
    }

    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        self.prune_log(before).await
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        self.take_lease(name, holder, now, until).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        self.give_up_lease(name, holder).await
    }

    async fn node_heartbeat(&self, node: &str, now: Timestamp, since: Timestamp) -> StoreResult<Vec<String>> {
        self.heartbeat(node, now, since).await
    }

    async fn relay_mark(&self) -> StoreResult<RelayMark> {
        self.read_relay_mark().await
    }

    async fn set_relay_mark(&self, mark: RelayMark) -> StoreResult<()> {
        self.write_relay_mark(mark).await
    }

    async fn append_event(&self, body: &EventBody, now: Timestamp) -> StoreResult<()> {
        self.append_one(body, now).await
    }

    async fn add_dead_letter(&self, letter: &NewDeadLetter) -> StoreResult<Option<i64>> {
        self.insert_dead_letter(letter).await
    }

    async fn dead_letters(&self) -> StoreResult<Vec<DeadLetter>> {
        self.letters(None).await
    }

    async fn dead_letter(&self, id: i64) -> StoreResult<Option<DeadLetter>> {
        Ok(self.letters(Some(id)).await?.pop())
    }

    async fn delete_dead_letters(&self, id: Option<i64>) -> StoreResult<u64> {
        self.delete_letters(id).await
    }

    async fn open_session(
        &self,
        session: &Session,
        limit: usize,
        live_since: Timestamp,
    ) -> StoreResult<bool> {
        self.admit_session(session, limit, live_since).await
    }

    async fn close_session(&self, key: &str) -> StoreResult<()> {
        self.remove_session(key).await
    }

    async fn announce_disconnect(&self, request: &Disconnect) -> StoreResult<()> {
        self.d.announce_disconnect(request).await
    }

    async fn clear_sessions(&self, node: &str) -> StoreResult<u64> {
        self.clear_node_sessions(node).await
    }

    async fn sessions_of(&self, user: &str, live_since: Timestamp) -> StoreResult<Vec<Session>> {
        self.live_sessions(user, live_since).await
    }

    async fn session_users(&self, live_since: Timestamp) -> StoreResult<i64> {
        self.live_session_users(live_since).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Waker};
    use std::time::Duration;

    #[tokio::test]
    async fn a_commit_whose_caller_went_away_is_finished_and_then_announced() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/h.db?mode=rwc", dir.path().display());
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(2).connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE events (seq INTEGER)").execute(&pool).await.unwrap();
        let signals = Arc::new(Signals::default());
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO events VALUES (1)").execute(&mut *tx).await.unwrap();
        let mut commit = Box::pin(commit_then(tx, signals.clone(), |s| s.outbox.notify_one()));
        let polled = commit.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(polled.is_pending(), "the commit is under way");
        drop(commit);
        tokio::time::timeout(Duration::from_secs(5), signals.outbox.notified())
            .await
            .expect("the commit is announced");
        // Announced once it had landed: any connection reads it.
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
        assert_eq!(count, 1);
    }
}

//! The event log (appending, replay reads, pruning) and the tables the nodes share to agree on a
//! leader.

use crate::dialect::Dialect;
use crate::rows::get;
use crate::store::SqlStore;
use herald_domain::{record, Event, EventBody, Timestamp};
use herald_store::{EventRange, StoreResult};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

impl<D: Dialect> SqlStore<D>
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
    /// Appends `events` in the caller's transaction, as versioned records.
    pub(crate) async fn append(
        conn: &mut <D::DB as Database>::Connection,
        events: &[EventBody],
        now: Timestamp,
    ) -> StoreResult<()> {
        for body in events {
            sqlx::query::<D::DB>(D::APPEND)
                .bind(body.kind())
                .bind(body.broadcast_id())
                .bind(record::encode(body))
                .bind(now.millis())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Logged events with `after < seq <= upto`, in order, at most `limit`.
    pub(crate) async fn events_in(&self, after: i64, upto: i64, limit: u32) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query::<D::DB>(
            "SELECT seq, payload FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(upto)
        .bind(i64::from(limit))
        .fetch_all(self.d.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let payload: String = get(r, 1)?;
                Ok(Event { seq: get(r, 0)?, body: record::decode(&payload)?.0 })
            })
            .collect()
    }

    pub(crate) async fn log_range(&self) -> StoreResult<EventRange> {
        let row = sqlx::query::<D::DB>(
            "SELECT (SELECT min(seq) FROM events), (SELECT last_seq FROM relay_state WHERE id = 1)",
        )
        .fetch_one(self.d.reader())
        .await?;
        Ok(EventRange { first: get(&row, 0)?, last: get(&row, 1)? })
    }

    pub(crate) async fn prune_log(&self, before: Timestamp) -> StoreResult<u64> {
        let pruned =
            sqlx::query_scalar::<D::DB, i64>("DELETE FROM events WHERE created_at < $1 RETURNING seq")
                .bind(before.millis())
                .fetch_all(self.d.writer())
                .await?;
        Ok(pruned.len() as u64)
    }

    pub(crate) async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let sql = format!(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE {} RETURNING holder",
            D::LEASE_TAKEOVER
        );
        let held: Option<String> = sqlx::query_scalar::<D::DB, String>(&sql)
            .bind(name)
            .bind(holder)
            .bind(now.millis())
            .bind(until.millis())
            .fetch_optional(self.d.writer())
            .await?;
        Ok(held.as_deref() == Some(holder))
    }

    pub(crate) async fn give_up_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query::<D::DB>("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.d.writer())
            .await?;
        Ok(())
    }

    /// Records that `node` is alive at `now`; the other nodes seen since `since`.
    pub(crate) async fn heartbeat(
        &self,
        node: &str,
        now: Timestamp,
        since: Timestamp,
    ) -> StoreResult<Vec<String>> {
        sqlx::query::<D::DB>(
            "INSERT INTO nodes (node_id, seen_at) VALUES ($1, $2) \
             ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(node)
        .bind(now.millis())
        .execute(self.d.writer())
        .await?;
        Ok(sqlx::query_scalar::<D::DB, String>(
            "SELECT node_id FROM nodes WHERE node_id <> $1 AND seen_at >= $2 ORDER BY node_id",
        )
        .bind(node)
        .bind(since.millis())
        .fetch_all(self.d.reader())
        .await?)
    }
}

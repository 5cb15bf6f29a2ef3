//! What nodes share beyond the log: the relay's mark for a cluster bus, appends outside a
//! command (dead-letter redrive), the dead-letter list, and the open streams of every node.

use crate::dialect::Dialect;
use crate::rows::get;
use crate::store::SqlStore;
use herald_domain::{EventBody, Timestamp};
use herald_store::{DeadLetter, NewDeadLetter, RelayMark, Session, StoreResult};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

const LETTER_COLUMNS: &str = "id, broadcast_id, correlation_id, original_key, original_topic, \
     CAST(original_partition AS BIGINT), original_offset, exception_message, exception_stack_trace, \
     failed_at, payload";

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
    pub(crate) async fn read_relay_mark(&self) -> StoreResult<RelayMark> {
        let row = sqlx::query::<D::DB>("SELECT published_seq, bus_offset FROM relay_state WHERE id = 1")
            .fetch_one(self.d.reader())
            .await?;
        Ok(RelayMark { published_seq: get(&row, 0)?, bus_offset: get(&row, 1)? })
    }

    pub(crate) async fn write_relay_mark(&self, mark: RelayMark) -> StoreResult<()> {
        sqlx::query::<D::DB>("UPDATE relay_state SET published_seq = $1, bus_offset = $2 WHERE id = 1")
            .bind(mark.published_seq)
            .bind(mark.bus_offset)
            .execute(self.d.writer())
            .await?;
        Ok(())
    }

    pub(crate) async fn append_one(&self, body: &EventBody, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.d.begin().await?;
        Self::append(&mut tx, std::slice::from_ref(body), now).await?;
        self.commit_logged(tx, true).await?;
        Ok(())
    }

    pub(crate) async fn insert_dead_letter(&self, l: &NewDeadLetter) -> StoreResult<Option<i64>> {
        let id: Option<i64> = sqlx::query_scalar::<D::DB, i64>(
            "INSERT INTO dlt_messages (broadcast_id, correlation_id, original_key, original_topic, \
             original_partition, original_offset, exception_message, exception_stack_trace, failed_at, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (original_topic, original_partition, original_offset) DO NOTHING RETURNING id",
        )
        .bind(l.broadcast_id)
        .bind(l.correlation_id.as_deref())
        .bind(l.original_key.as_deref())
        .bind(l.original_topic.as_str())
        .bind(i64::from(l.original_partition))
        .bind(l.original_offset)
        .bind(l.exception_message.as_str())
        .bind(l.exception_stack_trace.as_str())
        .bind(l.failed_at.millis())
        .bind(l.payload.as_str())
        .fetch_optional(self.d.writer())
        .await?;
        Ok(id)
    }

    pub(crate) async fn letters(&self, id: Option<i64>) -> StoreResult<Vec<DeadLetter>> {
        let sql = format!(
            "SELECT {LETTER_COLUMNS} FROM dlt_messages WHERE (CAST($1 AS BIGINT) IS NULL OR id = $1) ORDER BY id"
        );
        let rows = sqlx::query::<D::DB>(&sql).bind(id).fetch_all(self.d.reader()).await?;
        rows.iter()
            .map(|r| {
                let partition: i64 = get(r, 5)?;
                Ok(DeadLetter {
                    id: get(r, 0)?,
                    letter: NewDeadLetter {
                        broadcast_id: get(r, 1)?,
                        correlation_id: get(r, 2)?,
                        original_key: get(r, 3)?,
                        original_topic: get(r, 4)?,
                        original_partition: i32::try_from(partition).unwrap_or_default(),
                        original_offset: get(r, 6)?,
                        exception_message: get(r, 7)?,
                        exception_stack_trace: get(r, 8)?,
                        failed_at: Timestamp::from_millis(get(r, 9)?),
                        payload: get(r, 10)?,
                    },
                })
            })
            .collect()
    }

    pub(crate) async fn delete_letters(&self, id: Option<i64>) -> StoreResult<u64> {
        let gone = sqlx::query_scalar::<D::DB, i64>(
            "DELETE FROM dlt_messages WHERE CAST($1 AS BIGINT) IS NULL OR id = $1 RETURNING id",
        )
        .bind(id)
        .fetch_all(self.d.writer())
        .await?;
        Ok(gone.len() as u64)
    }

    /// Inserts, then counts the user's streams on live nodes; over the limit, takes it back. Two
    /// nodes admitting at once may both count the other and both refuse; never both admit.
    pub(crate) async fn admit_session(
        &self,
        s: &Session,
        limit: usize,
        live_since: Timestamp,
    ) -> StoreResult<bool> {
        sqlx::query::<D::DB>(
            "INSERT INTO stream_sessions (stream_key, connection_id, node_id, user_id, opened_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(s.key.as_str())
        .bind(s.connection_id.as_str())
        .bind(s.node_id.as_str())
        .bind(s.user_id.as_str())
        .bind(Timestamp::now().millis())
        .execute(self.d.writer())
        .await?;
        let held = self.live_sessions(&s.user_id, live_since).await?.len();
        if held > limit {
            self.remove_session(&s.key).await?;
            return Ok(false);
        }
        Ok(true)
    }

    pub(crate) async fn remove_session(&self, key: &str) -> StoreResult<()> {
        sqlx::query::<D::DB>("DELETE FROM stream_sessions WHERE stream_key = $1")
            .bind(key)
            .execute(self.d.writer())
            .await?;
        Ok(())
    }

    pub(crate) async fn clear_node_sessions(&self, node: &str) -> StoreResult<u64> {
        let gone = sqlx::query_scalar::<D::DB, String>(
            "DELETE FROM stream_sessions WHERE node_id = $1 RETURNING stream_key",
        )
        .bind(node)
        .fetch_all(self.d.writer())
        .await?;
        Ok(gone.len() as u64)
    }

    pub(crate) async fn live_sessions(&self, user: &str, live_since: Timestamp) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query::<D::DB>(
            "SELECT s.stream_key, s.connection_id, s.node_id, s.user_id FROM stream_sessions s \
             JOIN nodes n ON n.node_id = s.node_id WHERE s.user_id = $1 AND n.seen_at >= $2 \
             ORDER BY s.opened_at, s.connection_id",
        )
        .bind(user)
        .bind(live_since.millis())
        .fetch_all(self.d.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Session {
                    key: get(r, 0)?,
                    connection_id: get(r, 1)?,
                    node_id: get(r, 2)?,
                    user_id: get(r, 3)?,
                })
            })
            .collect()
    }

    pub(crate) async fn live_session_users(&self, live_since: Timestamp) -> StoreResult<i64> {
        let row = sqlx::query::<D::DB>(
            "SELECT count(DISTINCT s.user_id) FROM stream_sessions s \
             JOIN nodes n ON n.node_id = s.node_id WHERE n.seen_at >= $1",
        )
        .bind(live_since.millis())
        .fetch_one(self.d.reader())
        .await?;
        get(&row, 0)
    }
}

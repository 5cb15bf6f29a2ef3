//! SQLite's side of the [`Dialect`]: one writer, positions at write, `json_each`, and the target
//! ids of a broadcast in a table of their own.

use crate::checkpoint::Checkpointer;
use crate::lock::FileLock;
use herald_domain::TargetType;
use herald_store::{Disconnect, StoreResult};
use herald_store_sql::{execute_all, Connections, Dialect};
use sqlx::pool::PoolConnection;
use sqlx::SqliteConnection;

pub struct Sqlite {
    pub(crate) connections: Connections<sqlx::Sqlite>,
    /// Keeps other processes off the file until close.
    pub(crate) lock: FileLock,
    pub(crate) checkpoints: Checkpointer,
}

impl Dialect for Sqlite {
    type DB = sqlx::Sqlite;

    fn connections(&self) -> &Connections<sqlx::Sqlite> {
        &self.connections
    }

    async fn close(&self) {
        self.checkpoints.stop().await;
        self.reader().close().await;
        self.writer().close().await;
        self.lock.release();
    }

    async fn write_relaxed(&self, statements: &[(&str, i64, i64, &str)]) -> StoreResult<u64> {
        let mut conn = Relaxed::acquire(self.writer().acquire().await?).await?;
        let written =
            execute_all::<sqlx::Sqlite>(&mut conn.conn, Self::BEGIN, statements, |r| r.rows_affected())
                .await?;
        self.checkpoints.soon();
        // Written either way; a connection not restored is closed instead of pooled (`Relaxed`).
        if let Err(e) = conn.restore().await {
            tracing::warn!(error = %e, "restoring synchronous = FULL failed; closing the connection");
        }
        Ok(written)
    }

    async fn assign_positions(&self, _limit: u32) -> StoreResult<()> {
        Ok(())
    }

    async fn announce_disconnect(&self, request: &Disconnect) -> StoreResult<()> {
        let _ = self.signals().disconnect.send(request.clone());
        Ok(())
    }

    async fn index_targets(
        conn: &mut SqliteConnection,
        broadcast_id: i64,
        ids_json: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO broadcast_targets (broadcast_id, target_id) SELECT $1, value FROM json_each($2)",
        )
        .bind(broadcast_id)
        .bind(ids_json)
        .execute(conn)
        .await?;
        Ok(())
    }

    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    // The `events_advance` trigger moves the last position and a message's `message_seq` along.
    const APPEND: &'static str = "INSERT INTO events (seq, kind, broadcast_id, payload, created_at) \
         SELECT last_seq + 1, $1, $2, $3, $4 FROM relay_state WHERE id = 1";
    const LEASE_TAKEOVER: &'static str = "$3 IS NOT NULL";
    const FOR_UPDATE: &'static str = "";
    const BYTE_ORDER: &'static str = "";
    const BROADCAST_COLUMNS: &'static str = "b.id, b.correlation_id, b.sender_id, b.sender_name, b.content, \
         b.priority, b.category, b.target_type, b.target_ids, b.scheduled_at, b.expires_at, \
         b.fire_and_forget, b.status, b.created_at, b.updated_at, b.message_seq";

    fn json_ints(n: usize) -> String {
        format!("(SELECT value FROM json_each(${n}))")
    }

    fn json_texts(n: usize) -> String {
        Self::json_ints(n)
    }

    fn json_text_rows(n: usize, alias: &str) -> String {
        format!("json_each(${n}) AS {alias}")
    }

    fn json_agg(expr: &str) -> String {
        format!("json_group_array({expr})")
    }

    fn json_pair(a: &str, b: &str) -> String {
        format!("json_array({a}, {b})")
    }

    fn json_array_rows(n: usize, alias: &str) -> String {
        Self::json_text_rows(n, alias)
    }

    fn target_ids_value(n: usize) -> String {
        format!("${n}")
    }

    fn uuid_value(n: usize) -> String {
        format!("${n}")
    }

    /// SQLite's built-in `lower` changes only ASCII letters.
    fn fold(expr: &str) -> String {
        format!("lower({expr})")
    }

    fn targets_user(user: &str) -> String {
        format!(
            "(b.target_type = 'ALL' \
              OR (b.target_type = 'SELECTED' AND EXISTS (SELECT 1 FROM broadcast_targets t \
                    WHERE t.broadcast_id = b.id AND t.target_id = {user})) \
              OR (b.target_type = 'ROLE' AND EXISTS (SELECT 1 FROM broadcast_targets t \
                    JOIN user_roles r ON lower(r.role) = lower(t.target_id) \
                    WHERE t.broadcast_id = b.id AND r.user_id = {user})) \
              OR (b.target_type = 'PRODUCT' AND EXISTS (SELECT 1 FROM broadcast_targets t \
                    JOIN user_products p ON lower(p.product) = lower(t.target_id) \
                    WHERE t.broadcast_id = b.id AND p.user_id = {user})))"
        )
    }

    fn audience(t: TargetType, n: usize) -> String {
        let ids = Self::json_ints(n);
        match t {
            TargetType::All => {
                format!("SELECT b.id AS bid, u.user_id FROM broadcasts b, users u WHERE b.id IN {ids}")
            }
            TargetType::Selected => format!(
                "SELECT t.broadcast_id AS bid, t.target_id AS user_id FROM broadcast_targets t \
                 WHERE t.broadcast_id IN {ids}"
            ),
            TargetType::Role => format!(
                "SELECT DISTINCT t.broadcast_id AS bid, r.user_id FROM broadcast_targets t \
                 JOIN user_roles r ON lower(r.role) = lower(t.target_id) WHERE t.broadcast_id IN {ids}"
            ),
            TargetType::Product => format!(
                "SELECT DISTINCT t.broadcast_id AS bid, p.user_id FROM broadcast_targets t \
                 JOIN user_products p ON lower(p.product) = lower(t.target_id) \
                 WHERE t.broadcast_id IN {ids}"
            ),
        }
    }
}

/// The writer connection with `synchronous = NORMAL`: its commits write the WAL without an
/// `fsync`, which the next `FULL` commit (or checkpoint) makes for them, in order. It goes back to
/// the pool only once `FULL` again; if that did not happen (an error, or the caller went away),
/// it is closed instead, and the pool opens a new one with the configured `FULL`.
struct Relaxed {
    conn: PoolConnection<sqlx::Sqlite>,
    restored: bool,
}

impl Relaxed {
    async fn acquire(conn: PoolConnection<sqlx::Sqlite>) -> StoreResult<Self> {
        // Unrestored from here on: a caller gone while the setting is sent must not pool it
        // either (SQLite's thread may already have run it).
        let mut relaxed = Self { conn, restored: false };
        // On this connection only, between its transactions.
        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *relaxed.conn).await?;
        Ok(relaxed)
    }

    async fn restore(mut self) -> StoreResult<()> {
        // The level `open` configures.
        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *self.conn).await?;
        self.restored = true;
        Ok(())
    }
}

impl Drop for Relaxed {
    fn drop(&mut self) {
        if !self.restored {
            self.conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn synchronous(d: &Sqlite) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(d.writer()).await.unwrap()
    }

    #[tokio::test]
    async fn the_writer_commits_with_fsync_again_after_a_relaxed_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::open(&format!("sqlite://{}/h.db", dir.path().display())).await.unwrap();
        let d = store.dialect();
        const FULL: i64 = 2;
        assert_eq!(synchronous(d).await, FULL);
        let sql = "INSERT INTO users (user_id, created_at, updated_at) SELECT $3, $1, $2";
        assert_eq!(d.write_relaxed(&[(sql, 5, 5, "u1")]).await.unwrap(), 1);
        assert_eq!(synchronous(d).await, FULL, "restored");
        assert!(d.write_relaxed(&[(sql, 5, 5, "u1")]).await.is_err(), "u1 exists");
        assert_eq!(synchronous(d).await, FULL, "restored after a failed write");
        // Several statements are one transaction: all of them or none.
        let failing = d.write_relaxed(&[(sql, 5, 5, "u2"), (sql, 5, 5, "u1")]).await;
        assert!(failing.is_err(), "u1 exists");
        assert_eq!(synchronous(d).await, FULL, "restored after a failed transaction");
        let u2: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE user_id = 'u2'")
            .fetch_one(d.writer())
            .await
            .unwrap();
        assert_eq!(u2, 0, "rolled back with the statement that failed");
        assert_eq!(d.write_relaxed(&[(sql, 5, 5, "u2"), (sql, 5, 5, "u3")]).await.unwrap(), 2);
        // One that is never restored (its caller went away) is closed, not pooled.
        drop(Relaxed::acquire(d.writer().acquire().await.unwrap()).await.unwrap());
        assert_eq!(synchronous(d).await, FULL, "a new connection");
    }
}

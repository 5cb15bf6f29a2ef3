//! Leases and node liveness. An SQLite file belongs to one process, so the lease is always
//! granted to whoever asks: a process restarted after a crash (under a new node id) must not wait
//! for its predecessor's lease to run out. The table is kept so the server runs the same
//! leadership code on every backend.

use crate::rows::db_err;
use herald_domain::Timestamp;
use herald_store::StoreResult;
use sqlx::SqlitePool;

pub async fn try_lease(pool: &SqlitePool, name: &str, holder: &str, until: Timestamp) -> StoreResult<bool> {
    sqlx::query(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
    )
    .bind(name)
    .bind(holder)
    .bind(until.millis())
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(true)
}

pub async fn release_lease(pool: &SqlitePool, name: &str, holder: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM leases WHERE name = ?1 AND holder = ?2")
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub async fn node_heartbeat(
    pool: &SqlitePool,
    node: &str,
    now: Timestamp,
    since: Timestamp,
) -> StoreResult<Vec<String>> {
    sqlx::query("INSERT INTO nodes (node_id, seen_at) VALUES (?1, ?2) ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at")
        .bind(node)
        .bind(now.millis())
        .execute(pool)
        .await
        .map_err(db_err)?;
    sqlx::query_scalar("SELECT node_id FROM nodes WHERE node_id <> ?1 AND seen_at >= ?2 ORDER BY node_id")
        .bind(node)
        .bind(since.millis())
        .fetch_all(pool)
        .await
        .map_err(db_err)
}

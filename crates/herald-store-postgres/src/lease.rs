//! Leases and node liveness: how several Herald processes on one database agree on the one that
//! runs the relay and the scheduler, and notice each other.

use crate::rows::db_err;
use herald_domain::Timestamp;
use herald_store::StoreResult;
use sqlx::PgPool;

pub async fn try_lease(
    pool: &PgPool,
    name: &str,
    holder: &str,
    now: Timestamp,
    until: Timestamp,
) -> StoreResult<bool> {
    let held: Option<String> = sqlx::query_scalar(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $4) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.holder = excluded.holder OR leases.expires_at <= $3 \
         RETURNING holder",
    )
    .bind(name)
    .bind(holder)
    .bind(now.millis())
    .bind(until.millis())
    .fetch_optional(pool)
    .await
    .map_err(db_err)?;
    Ok(held.as_deref() == Some(holder))
}

pub async fn release_lease(pool: &PgPool, name: &str, holder: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub async fn node_heartbeat(
    pool: &PgPool,
    node: &str,
    now: Timestamp,
    since: Timestamp,
) -> StoreResult<Vec<String>> {
    sqlx::query("INSERT INTO nodes (node_id, seen_at) VALUES ($1, $2) ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at")
        .bind(node)
        .bind(now.millis())
        .execute(pool)
        .await
        .map_err(db_err)?;
    sqlx::query_scalar("SELECT node_id FROM nodes WHERE node_id <> $1 AND seen_at >= $2 ORDER BY node_id")
        .bind(node)
        .bind(since.millis())
        .fetch_all(pool)
        .await
        .map_err(db_err)
}

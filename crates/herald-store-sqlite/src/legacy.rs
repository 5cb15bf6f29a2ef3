//! Events left in the outbox by versions that assigned positions in the relay (a database
//! upgraded with events not yet relayed): moved into the log once, at open.

use herald_domain::record;
use herald_store::StoreResult;
use herald_store_sql::Dialect;
use sqlx::SqlitePool;

pub async fn drain_outbox(pool: &SqlitePool) -> StoreResult<usize> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT payload, created_at FROM outbox ORDER BY id").fetch_all(&mut *tx).await?;
    if rows.is_empty() {
        // The usual case: nothing to write, so no commit (and no fsync) at every start.
        return Ok(0);
    }
    for (payload, created_at) in &rows {
        let (body, _) = record::decode(payload)?;
        sqlx::query(crate::Sqlite::APPEND)
            .bind(body.kind())
            .bind(body.broadcast_id())
            .bind(payload)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM outbox").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows.len())
}

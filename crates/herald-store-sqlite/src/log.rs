//! The scheduler's due work and reads of the log (relay and replay).

use crate::broadcasts::set_status;
use crate::rows::{broadcast_from_row, db_err, enqueue_event, ts, BROADCAST_COLUMNS};
use herald_domain::{BroadcastStatus, Event, EventBody, RemovalReason, Timestamp};
use herald_store::{DueWork, EventRange, StoreError, StoreResult};
use sqlx::{Row, SqlitePool};

pub async fn next_due(pool: &SqlitePool) -> StoreResult<Option<Timestamp>> {
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT min(t) FROM ( \
           SELECT min(scheduled_at) AS t FROM broadcasts WHERE status = 'SCHEDULED' \
           UNION ALL \
           SELECT min(expires_at) FROM broadcasts WHERE status IN ('SCHEDULED', 'ACTIVE') \
         )",
    )
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(ts(due))
}

pub async fn run_due(pool: &SqlitePool, now: Timestamp) -> StoreResult<DueWork> {
    let mut tx = crate::rows::begin(pool).await?;
    let mut work = DueWork::default();
    let sql = format!(
        "SELECT {BROADCAST_COLUMNS} FROM broadcasts b WHERE b.status = 'SCHEDULED' AND b.scheduled_at <= ?1 \
         ORDER BY b.scheduled_at, b.id"
    );
    let rows = sqlx::query(&sql).bind(now.millis()).fetch_all(&mut *tx).await.map_err(db_err)?;
    for row in &rows {
        let mut b = broadcast_from_row(row)?;
        b.status = b.status.transition(BroadcastStatus::Active)?;
        b.updated_at = now;
        if b.expires_at.is_some_and(|e| e <= now) {
            // Its whole window passed while nothing ran: it ends without reaching anyone.
            b.status = b.status.transition(BroadcastStatus::Expired)?;
            set_status(&mut tx, &b).await?;
            work.expired += 1;
            continue;
        }
        set_status(&mut tx, &b).await?;
        enqueue_event(&mut tx, &EventBody::Message { broadcast: b }, now).await?;
        work.activated += 1;
    }
    let sql = format!(
        "SELECT {BROADCAST_COLUMNS} FROM broadcasts b WHERE b.status = 'ACTIVE' AND b.expires_at <= ?1 \
         ORDER BY b.expires_at, b.id"
    );
    let rows = sqlx::query(&sql).bind(now.millis()).fetch_all(&mut *tx).await.map_err(db_err)?;
    for row in &rows {
        let mut b = broadcast_from_row(row)?;
        b.status = b.status.transition(BroadcastStatus::Expired)?;
        b.updated_at = now;
        set_status(&mut tx, &b).await?;
        let body = EventBody::MessageRemoved {
            broadcast_id: b.id,
            reason: RemovalReason::Expired,
            target: b.target,
        };
        enqueue_event(&mut tx, &body, now).await?;
        work.expired += 1;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(work)
}

fn parse_body(payload: &str) -> StoreResult<EventBody> {
    serde_json::from_str(payload).map_err(|e| StoreError::Backend(format!("stored event is not valid: {e}")))
}

/// Moves events left in the outbox by a version that assigned positions in the relay into the
/// log (a database upgraded with events not yet relayed); runs once at open.
pub async fn drain_outbox(pool: &SqlitePool) -> StoreResult<usize> {
    let mut tx = crate::rows::begin(pool).await?;
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT payload, created_at FROM outbox ORDER BY id")
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    if rows.is_empty() {
        // The usual case: nothing to write, so no commit (and no fsync) at every start.
        return Ok(0);
    }
    for (payload, created_at) in &rows {
        let body = parse_body(payload)?;
        enqueue_event(&mut tx, &body, Timestamp::from_millis(*created_at)).await?;
    }
    sqlx::query("DELETE FROM outbox").execute(&mut *tx).await.map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(rows.len())
}

pub async fn events_after(pool: &SqlitePool, after: i64, upto: i64, limit: u32) -> StoreResult<Vec<Event>> {
    let rows =
        sqlx::query("SELECT seq, payload FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3")
            .bind(after)
            .bind(upto)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            let payload: String = r.try_get(1).map_err(db_err)?;
            Ok(Event { seq: r.try_get(0).map_err(db_err)?, body: parse_body(&payload)? })
        })
        .collect()
}

pub async fn event_range(pool: &SqlitePool) -> StoreResult<EventRange> {
    let (first, last): (Option<i64>, i64) = sqlx::query_as(
        "SELECT (SELECT min(seq) FROM events), (SELECT last_seq FROM relay_state WHERE id = 1)",
    )
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(EventRange { first, last })
}

pub async fn prune_events(pool: &SqlitePool, before: Timestamp) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM events WHERE created_at < ?1")
        .bind(before.millis())
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected())
}

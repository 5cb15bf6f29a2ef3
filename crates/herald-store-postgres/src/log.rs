//! The scheduler's due work, the relay's outbox-to-log move, and replay reads of the log.
//!
//! Both writers are safe to run on several nodes at once (during a leader hand-over, say):
//! activation and expiry are single conditional `UPDATE … RETURNING` statements, so a row changes
//! state once; and the relay holds the `relay_state` row lock while it assigns positions.

use crate::rows::{broadcast_from_row, db_err, enqueue_event, ts, BROADCAST_COLUMNS};
use herald_domain::{Event, EventBody, RemovalReason, Timestamp};
use herald_store::{DueWork, EventRange, StoreError, StoreResult};
use sqlx::{PgPool, Row};

pub async fn next_due(pool: &PgPool) -> StoreResult<Option<Timestamp>> {
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT least( \
           (SELECT min(scheduled_at) FROM broadcasts WHERE status = 'SCHEDULED'), \
           (SELECT min(expires_at) FROM broadcasts WHERE status IN ('SCHEDULED', 'ACTIVE')))",
    )
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(ts(due))
}

pub async fn run_due(pool: &PgPool, now: Timestamp) -> StoreResult<DueWork> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let mut work = DueWork::default();
    // Whole window passed while nothing ran: it ends without reaching anyone.
    let skipped = sqlx::query(
        "UPDATE broadcasts SET status = 'EXPIRED', updated_at = $1 \
         WHERE status = 'SCHEDULED' AND scheduled_at <= $1 AND expires_at <= $1",
    )
    .bind(now.millis())
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    work.expired += skipped.rows_affected() as usize;
    let sql = format!(
        "UPDATE broadcasts b SET status = 'ACTIVE', updated_at = $1 \
         WHERE b.status = 'SCHEDULED' AND b.scheduled_at <= $1 RETURNING {BROADCAST_COLUMNS}"
    );
    let rows = sqlx::query(&sql).bind(now.millis()).fetch_all(&mut *tx).await.map_err(db_err)?;
    let mut activated: Vec<_> = rows.iter().map(broadcast_from_row).collect::<StoreResult<_>>()?;
    activated.sort_by_key(|b| (b.scheduled_at, b.id));
    for broadcast in activated {
        enqueue_event(&mut tx, &EventBody::Message { broadcast }, now).await?;
        work.activated += 1;
    }
    let sql = format!(
        "UPDATE broadcasts b SET status = 'EXPIRED', updated_at = $1 \
         WHERE b.status = 'ACTIVE' AND b.expires_at <= $1 RETURNING {BROADCAST_COLUMNS}"
    );
    let rows = sqlx::query(&sql).bind(now.millis()).fetch_all(&mut *tx).await.map_err(db_err)?;
    let mut expired: Vec<_> = rows.iter().map(broadcast_from_row).collect::<StoreResult<_>>()?;
    expired.sort_by_key(|b| (b.expires_at, b.id));
    for b in expired {
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

pub async fn relay_batch(pool: &PgPool, limit: u32) -> StoreResult<Vec<Event>> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let mut seq: i64 = sqlx::query_scalar("SELECT last_seq FROM relay_state WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    let rows: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT id, payload, created_at FROM outbox ORDER BY id LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut events = Vec::with_capacity(rows.len());
    let (mut seqs, mut kinds, mut bids, mut payloads, mut times) = (vec![], vec![], vec![], vec![], vec![]);
    let mut message_seqs: Vec<(i64, i64)> = Vec::new();
    for (_, payload, created_at) in &rows {
        seq += 1;
        let body = parse_body(payload)?;
        seqs.push(seq);
        kinds.push(body.kind());
        bids.push(body.broadcast_id());
        payloads.push(payload.as_str());
        times.push(*created_at);
        if let EventBody::Message { broadcast } = &body {
            message_seqs.push((broadcast.id, seq));
        }
        events.push(Event { seq, body });
    }
    sqlx::query(
        "INSERT INTO events (seq, kind, broadcast_id, payload, created_at) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])",
    )
    .bind(&seqs)
    .bind(&kinds)
    .bind(&bids)
    .bind(&payloads)
    .bind(&times)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    if !message_seqs.is_empty() {
        let (ids, positions): (Vec<i64>, Vec<i64>) = message_seqs.into_iter().unzip();
        sqlx::query(
            "UPDATE broadcasts b SET message_seq = m.seq FROM unnest($1::bigint[], $2::bigint[]) AS m(id, seq) \
             WHERE b.id = m.id",
        )
        .bind(ids)
        .bind(positions)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    sqlx::query("DELETE FROM outbox WHERE id = ANY ($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    sqlx::query("UPDATE relay_state SET last_seq = $1 WHERE id = 1")
        .bind(seq)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(events)
}

pub async fn events_after(pool: &PgPool, after: i64, upto: i64, limit: u32) -> StoreResult<Vec<Event>> {
    let rows =
        sqlx::query("SELECT seq, payload FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3")
            .bind(after)
            .bind(upto)
            .bind(i64::from(limit))
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

pub async fn event_range(pool: &PgPool) -> StoreResult<EventRange> {
    let (first, last): (Option<i64>, i64) = sqlx::query_as(
        "SELECT (SELECT min(seq) FROM events), (SELECT last_seq FROM relay_state WHERE id = 1)",
    )
    .fetch_one(pool)
    .await
    .map_err(db_err)?;
    Ok(EventRange { first, last })
}

pub async fn prune_events(pool: &PgPool, before: Timestamp) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM events WHERE created_at < $1")
        .bind(before.millis())
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected())
}

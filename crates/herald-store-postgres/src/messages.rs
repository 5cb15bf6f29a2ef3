//! A user's messages: inbox, pending catch-up, read and visibility state, delivery records.

use crate::rows::{broadcast_from_row, db_err, enqueue_event, ts, BROADCAST_COLUMNS, TARGETS_USER};
use herald_domain::{Broadcast, EventBody, Timestamp};
use herald_store::{check_targeted, DeliveryMark, InboxItem, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

/// Active, non-fire-and-forget, not expired, unread, addressed to `$1` at time `$2`.
fn inbox_where() -> String {
    format!(
        "b.status = 'ACTIVE' AND NOT b.fire_and_forget AND (b.expires_at IS NULL OR b.expires_at > $2) \
         AND d.read_at IS NULL AND {TARGETS_USER}"
    )
}

fn item_from_row(row: &PgRow) -> StoreResult<InboxItem> {
    Ok(InboxItem {
        broadcast: broadcast_from_row(row)?,
        delivered_at: ts(row.try_get("delivered_at").map_err(db_err)?),
        read_at: ts(row.try_get("read_at").map_err(db_err)?),
        message_seq: row.try_get("message_seq").map_err(db_err)?,
    })
}

fn inbox_select(extra_where: &str, order: &str) -> String {
    format!(
        "SELECT {BROADCAST_COLUMNS}, d.delivered_at, d.read_at FROM broadcasts b \
         LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = $1 \
         WHERE {} AND {extra_where} ORDER BY {order} LIMIT $4",
        inbox_where()
    )
}

pub async fn inbox(
    pool: &PgPool,
    user: &str,
    before: Option<i64>,
    limit: u32,
    now: Timestamp,
) -> StoreResult<Vec<InboxItem>> {
    let sql = inbox_select("b.id < $3", "b.id DESC");
    let rows = sqlx::query(&sql)
        .bind(user)
        .bind(now.millis())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(item_from_row).collect()
}

/// At most this many pending messages are sent on one connect (the newest); older ones stay in
/// the inbox.
const MAX_PENDING: i64 = 1_000;

pub async fn pending_ids(
    pool: &PgPool,
    user: &str,
    upto_seq: i64,
    now: Timestamp,
) -> StoreResult<Vec<(i64, i64)>> {
    let sql = format!(
        "SELECT b.message_seq, b.id FROM broadcasts b \
         LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = $1 \
         WHERE {} AND d.delivered_at IS NULL AND b.message_seq IS NOT NULL AND b.message_seq <= $3 \
         ORDER BY b.message_seq DESC LIMIT $4",
        inbox_where()
    );
    let mut ids: Vec<(i64, i64)> = sqlx::query_as(&sql)
        .bind(user)
        .bind(now.millis())
        .bind(upto_seq)
        .bind(MAX_PENDING)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    ids.reverse();
    Ok(ids)
}

pub async fn live_unread(
    pool: &PgPool,
    user: &str,
    ids: &[i64],
    now: Timestamp,
) -> StoreResult<Vec<Broadcast>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {BROADCAST_COLUMNS} FROM broadcasts b \
         LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = $1 \
         WHERE b.id = ANY ($2) AND b.status = 'ACTIVE' AND NOT b.fire_and_forget \
         AND (b.expires_at IS NULL OR b.expires_at > $3) AND d.read_at IS NULL"
    );
    let rows =
        sqlx::query(&sql).bind(user).bind(ids).bind(now.millis()).fetch_all(pool).await.map_err(db_err)?;
    rows.iter().map(broadcast_from_row).collect()
}

pub async fn unread_count(pool: &PgPool, user: &str, now: Timestamp) -> StoreResult<i64> {
    let sql = format!(
        "SELECT count(*) FROM broadcasts b \
         LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = $1 WHERE {}",
        inbox_where()
    );
    sqlx::query_scalar(&sql).bind(user).bind(now.millis()).fetch_one(pool).await.map_err(db_err)
}

/// Fails unless broadcast `id` is addressed to `user` and has gone out (not still scheduled).
async fn require_targeted(conn: &mut PgConnection, user: &str, id: i64) -> StoreResult<()> {
    let sql = format!("SELECT b.status, {TARGETS_USER} FROM broadcasts b WHERE b.id = $2");
    let row: Option<(String, bool)> =
        sqlx::query_as(&sql).bind(user).bind(id).fetch_optional(&mut *conn).await.map_err(db_err)?;
    check_targeted(row, user, id)
}

/// Sets `read_at` (and `delivered_at`, if missing) unless already read; returns the read time and
/// whether it was newly set.
async fn set_read(
    conn: &mut PgConnection,
    user: &str,
    id: i64,
    now: Timestamp,
) -> StoreResult<(Timestamp, bool)> {
    // The row lock (or the insert) makes concurrent reads of one message emit one receipt.
    sqlx::query("INSERT INTO deliveries (broadcast_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(id)
        .bind(user)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT read_at FROM deliveries WHERE broadcast_id = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(user)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    if let Some(at) = existing {
        return Ok((Timestamp::from_millis(at), false));
    }
    sqlx::query(
        "UPDATE deliveries SET read_at = $3, delivered_at = COALESCE(delivered_at, $3) \
         WHERE broadcast_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user)
    .bind(now.millis())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let receipt = EventBody::ReadReceipt { user_id: user.to_owned(), broadcast_id: id, read_at: now };
    enqueue_event(conn, &receipt, now).await?;
    Ok((now, true))
}

pub async fn mark_read(pool: &PgPool, user: &str, id: i64, now: Timestamp) -> StoreResult<Timestamp> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    require_targeted(&mut tx, user, id).await?;
    let (at, _) = set_read(&mut tx, user, id, now).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(at)
}

pub async fn mark_all_read(pool: &PgPool, user: &str, now: Timestamp) -> StoreResult<u64> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let sql = format!(
        "SELECT b.id FROM broadcasts b LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = $1 \
         WHERE {} ORDER BY b.id",
        inbox_where()
    );
    let ids: Vec<i64> =
        sqlx::query_scalar(&sql).bind(user).bind(now.millis()).fetch_all(&mut *tx).await.map_err(db_err)?;
    let mut newly = 0;
    for id in ids {
        if set_read(&mut tx, user, id, now).await?.1 {
            newly += 1;
        }
    }
    tx.commit().await.map_err(db_err)?;
    Ok(newly)
}

pub async fn ack_visibility(pool: &PgPool, user: &str, id: i64, now: Timestamp) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    require_targeted(&mut tx, user, id).await?;
    sqlx::query(
        "INSERT INTO deliveries (broadcast_id, user_id, delivered_at, rendered_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (broadcast_id, user_id) DO UPDATE SET \
         delivered_at = COALESCE(deliveries.delivered_at, excluded.delivered_at), \
         rendered_at = COALESCE(deliveries.rendered_at, excluded.rendered_at)",
    )
    .bind(id)
    .bind(user)
    .bind(now.millis())
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(())
}

/// One statement for the whole batch: the marks travel as four arrays and are unnested server-side.
pub async fn record_deliveries(pool: &PgPool, marks: &[DeliveryMark]) -> StoreResult<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let broadcast_ids: Vec<i64> = marks.iter().map(|m| m.broadcast_id).collect();
    let user_ids: Vec<&str> = marks.iter().map(|m| m.user_id.as_ref()).collect();
    let at: Vec<i64> = marks.iter().map(|m| m.at.millis()).collect();
    let read_at: Vec<Option<i64>> = marks.iter().map(|m| m.read.then_some(m.at.millis())).collect();
    sqlx::query(
        "INSERT INTO deliveries (broadcast_id, user_id, delivered_at, read_at) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) \
         ON CONFLICT (broadcast_id, user_id) DO UPDATE SET \
         delivered_at = COALESCE(deliveries.delivered_at, excluded.delivered_at), \
         read_at = COALESCE(deliveries.read_at, excluded.read_at)",
    )
    .bind(broadcast_ids)
    .bind(user_ids)
    .bind(at)
    .bind(read_at)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

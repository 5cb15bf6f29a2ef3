//! A user's messages: inbox, pending catch-up, read and visibility state, delivery records.

use crate::rows::{broadcast_from_row, db_err, enqueue_event, targets_user, ts, BROADCAST_COLUMNS};
use herald_domain::{Broadcast, EventBody, Timestamp};
use herald_store::{check_targeted, DeliveryMark, InboxItem, StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

/// Active, non-fire-and-forget, not expired, unread, addressed to `?1` at time `?2`.
const INBOX_WHERE: &str = concat!(
    "b.status = 'ACTIVE' AND b.fire_and_forget = 0 AND (b.expires_at IS NULL OR b.expires_at > ?2) \
     AND d.read_at IS NULL AND ",
    targets_user!()
);

fn item_from_row(row: &SqliteRow) -> StoreResult<InboxItem> {
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
         LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = ?1 \
         WHERE {INBOX_WHERE} AND {extra_where} ORDER BY {order} LIMIT ?4"
    )
}

pub async fn inbox(
    pool: &SqlitePool,
    user: &str,
    before: Option<i64>,
    limit: u32,
    now: Timestamp,
) -> StoreResult<Vec<InboxItem>> {
    let sql = inbox_select("b.id < ?3", "b.id DESC");
    let rows = sqlx::query(&sql)
        .bind(user)
        .bind(now.millis())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(item_from_row).collect()
}

/// At most this many pending messages are sent on one connect (the newest); older ones stay in
/// the inbox.
const MAX_PENDING: u32 = 1_000;

pub async fn pending_ids(
    pool: &SqlitePool,
    user: &str,
    upto_seq: i64,
    now: Timestamp,
) -> StoreResult<Vec<(i64, i64)>> {
    let sql = format!(
        "SELECT b.message_seq, b.id FROM broadcasts b \
         LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = ?1 \
         WHERE {INBOX_WHERE} AND d.delivered_at IS NULL AND b.message_seq IS NOT NULL AND b.message_seq <= ?3 \
         ORDER BY b.message_seq DESC LIMIT ?4"
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
    pool: &SqlitePool,
    user: &str,
    ids: &[i64],
    now: Timestamp,
) -> StoreResult<Vec<Broadcast>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(ids).map_err(|e| StoreError::Backend(e.to_string()))?;
    let sql = format!(
        "SELECT {BROADCAST_COLUMNS} FROM broadcasts b \
         LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = ?1 \
         WHERE b.id IN (SELECT value FROM json_each(?2)) AND b.status = 'ACTIVE' AND b.fire_and_forget = 0 \
         AND (b.expires_at IS NULL OR b.expires_at > ?3) AND d.read_at IS NULL"
    );
    let rows =
        sqlx::query(&sql).bind(user).bind(list).bind(now.millis()).fetch_all(pool).await.map_err(db_err)?;
    rows.iter().map(broadcast_from_row).collect()
}

pub async fn unread_count(pool: &SqlitePool, user: &str, now: Timestamp) -> StoreResult<i64> {
    let sql = format!(
        "SELECT count(*) FROM broadcasts b \
         LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = ?1 WHERE {INBOX_WHERE}"
    );
    sqlx::query_scalar(&sql).bind(user).bind(now.millis()).fetch_one(pool).await.map_err(db_err)
}

/// Fails with not-found or not-targeted unless broadcast `id` is addressed to `user`.
/// Fails unless broadcast `id` is addressed to `user` and has gone out (not still scheduled).
async fn require_targeted(conn: &mut SqliteConnection, user: &str, id: i64) -> StoreResult<()> {
    let sql = concat!("SELECT b.status, ", targets_user!(), " FROM broadcasts b WHERE b.id = ?2");
    let row: Option<(String, bool)> =
        sqlx::query_as(sql).bind(user).bind(id).fetch_optional(&mut *conn).await.map_err(db_err)?;
    check_targeted(row, user, id)
}

/// Sets `read_at` (and `delivered_at`, if missing) unless already read; returns the read time and
/// whether it was newly set.
async fn set_read(
    conn: &mut SqliteConnection,
    user: &str,
    id: i64,
    now: Timestamp,
) -> StoreResult<(Timestamp, bool)> {
    let existing: Option<Option<i64>> =
        sqlx::query_scalar("SELECT read_at FROM deliveries WHERE broadcast_id = ?1 AND user_id = ?2")
            .bind(id)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    if let Some(Some(at)) = existing {
        return Ok((Timestamp::from_millis(at), false));
    }
    sqlx::query(
        "INSERT INTO deliveries (broadcast_id, user_id, delivered_at, read_at) VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT (broadcast_id, user_id) DO UPDATE SET \
         delivered_at = COALESCE(deliveries.delivered_at, excluded.delivered_at), read_at = excluded.read_at",
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

pub async fn mark_read(pool: &SqlitePool, user: &str, id: i64, now: Timestamp) -> StoreResult<Timestamp> {
    let mut tx = crate::rows::begin(pool).await?;
    require_targeted(&mut tx, user, id).await?;
    let (at, _) = set_read(&mut tx, user, id, now).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(at)
}

pub async fn mark_all_read(pool: &SqlitePool, user: &str, now: Timestamp) -> StoreResult<u64> {
    let mut tx = crate::rows::begin(pool).await?;
    let sql = format!(
        "SELECT b.id FROM broadcasts b LEFT JOIN deliveries d ON d.broadcast_id = b.id AND d.user_id = ?1 \
         WHERE {INBOX_WHERE} ORDER BY b.id"
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

pub async fn ack_visibility(pool: &SqlitePool, user: &str, id: i64, now: Timestamp) -> StoreResult<()> {
    let mut tx = crate::rows::begin(pool).await?;
    require_targeted(&mut tx, user, id).await?;
    sqlx::query(
        "INSERT INTO deliveries (broadcast_id, user_id, delivered_at, rendered_at) VALUES (?1, ?2, ?3, ?3) \
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

/// Rows per statement; each statement carries its rows as one JSON array parameter.
const MARKS_PER_STATEMENT: usize = 5_000;

/// One statement per broadcast and few thousand marks: the (user, time) pairs travel as a single
/// JSON array that SQLite unpacks itself (`json_each`), several times faster than binding
/// parameters per row. Marks sorted by (broadcast, user), as the recorder sends them, become
/// appends to the primary key's B-tree. A row that exists already has its delivery time (every
/// writer sets it), so only fire-and-forget marks need to update one (`read_at`).
pub async fn record_deliveries(pool: &SqlitePool, marks: &[DeliveryMark]) -> StoreResult<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let mut tx = crate::rows::begin(pool).await?;
    let mut rest = marks;
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take(MARKS_PER_STATEMENT)
            .take_while(|m| m.broadcast_id == first.broadcast_id && m.read == first.read)
            .count();
        let (group, tail) = rest.split_at(same);
        rest = tail;
        let pairs: Vec<(&str, i64)> = group.iter().map(|m| (&*m.user_id, m.at.millis())).collect();
        let pairs = serde_json::to_string(&pairs).map_err(|e| StoreError::Backend(e.to_string()))?;
        let sql = if first.read {
            "INSERT INTO deliveries (broadcast_id, user_id, delivered_at, read_at) \
             SELECT ?1, value ->> 0, value ->> 1, value ->> 1 FROM json_each(?2) WHERE true \
             ON CONFLICT (broadcast_id, user_id) DO UPDATE SET read_at = COALESCE(deliveries.read_at, excluded.read_at)"
        } else {
            "INSERT INTO deliveries (broadcast_id, user_id, delivered_at) \
             SELECT ?1, value ->> 0, value ->> 1 FROM json_each(?2) WHERE true ON CONFLICT DO NOTHING"
        };
        sqlx::query(sql).bind(first.broadcast_id).bind(pairs).execute(&mut *tx).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(())
}

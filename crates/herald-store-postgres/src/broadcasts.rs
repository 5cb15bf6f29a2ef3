//! Broadcasts as admins see them: create, list, cancel, counts and per-user rows.

use crate::rows::{
    audience_sql, broadcast_from_row, db_err, enqueue_event, notify, ts, BROADCAST_COLUMNS, SCHEDULE_CHANNEL,
};
use herald_domain::{Broadcast, BroadcastStatus, EventBody, NewBroadcast, RemovalReason, Timestamp};
use herald_store::{Counts, DeliveryRow, ListFilter, StoreError, StoreResult};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

pub async fn create(pool: &PgPool, new: &NewBroadcast, now: Timestamp) -> StoreResult<Broadcast> {
    let correlation_id = Uuid::new_v4();
    let mut tx = pool.begin().await.map_err(db_err)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO broadcasts (correlation_id, sender_id, sender_name, content, priority, category, \
         target_type, target_ids, scheduled_at, expires_at, fire_and_forget, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id",
    )
    .bind(correlation_id)
    .bind(&new.sender_id)
    .bind(&new.sender_name)
    .bind(&new.content)
    .bind(new.priority.as_str())
    .bind(&new.category)
    .bind(new.target.target_type.as_str())
    .bind(&new.target.target_ids)
    .bind(new.scheduled_at.map(Timestamp::millis))
    .bind(new.expires_at.map(Timestamp::millis))
    .bind(new.fire_and_forget)
    .bind(new.status.as_str())
    .bind(now.millis())
    .fetch_one(&mut *tx)
    .await
    .map_err(db_err)?;
    let broadcast = new.clone().into_broadcast(id, correlation_id, now);
    if broadcast.status == BroadcastStatus::Active {
        enqueue_event(&mut tx, &EventBody::Message { broadcast: broadcast.clone() }, now).await?;
    }
    if broadcast.scheduled_at.is_some() || broadcast.expires_at.is_some() {
        notify(&mut tx, SCHEDULE_CHANNEL).await?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(broadcast)
}

pub async fn get(pool: &PgPool, id: i64) -> StoreResult<Option<Broadcast>> {
    let sql = format!("SELECT {BROADCAST_COLUMNS} FROM broadcasts b WHERE b.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await.map_err(db_err)?;
    row.as_ref().map(broadcast_from_row).transpose()
}

/// Reads and locks the broadcast for the rest of the transaction.
pub async fn get_for_update(conn: &mut PgConnection, id: i64) -> StoreResult<Broadcast> {
    let sql = format!("SELECT {BROADCAST_COLUMNS} FROM broadcasts b WHERE b.id = $1 FOR UPDATE");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await.map_err(db_err)?;
    row.as_ref().map(broadcast_from_row).transpose()?.ok_or(StoreError::BroadcastNotFound(id))
}

pub async fn list(
    pool: &PgPool,
    filter: ListFilter,
    before: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<Broadcast>> {
    let (status, order) = match filter {
        ListFilter::All => (None, "b.id DESC"),
        ListFilter::Active => (Some(BroadcastStatus::Active), "b.id DESC"),
        ListFilter::Scheduled => (Some(BroadcastStatus::Scheduled), "b.scheduled_at ASC, b.id ASC"),
        ListFilter::Expired => (Some(BroadcastStatus::Expired), "b.id DESC"),
        ListFilter::Cancelled => (Some(BroadcastStatus::Cancelled), "b.id DESC"),
    };
    let sql = format!(
        "SELECT {BROADCAST_COLUMNS} FROM broadcasts b \
         WHERE ($1::text IS NULL OR b.status = $1) AND b.id < $2 ORDER BY {order} LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(status.map(BroadcastStatus::as_str))
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(broadcast_from_row).collect()
}

pub async fn cancel(pool: &PgPool, id: i64, now: Timestamp) -> StoreResult<Broadcast> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let mut b = get_for_update(&mut tx, id).await?;
    let was = b.status;
    b.status = was.transition(BroadcastStatus::Cancelled)?;
    b.updated_at = now;
    set_status(&mut tx, &b).await?;
    if was == BroadcastStatus::Active {
        let body = EventBody::MessageRemoved {
            broadcast_id: id,
            reason: RemovalReason::Cancelled,
            target: b.target.clone(),
        };
        enqueue_event(&mut tx, &body, now).await?;
    }
    notify(&mut tx, SCHEDULE_CHANNEL).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(b)
}

pub async fn set_status(conn: &mut PgConnection, b: &Broadcast) -> StoreResult<()> {
    sqlx::query("UPDATE broadcasts SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(b.status.as_str())
        .bind(b.updated_at.millis())
        .bind(b.id)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub async fn counts(pool: &PgPool, b: &Broadcast) -> StoreResult<Counts> {
    let sql = format!(
        "SELECT count(*), count(d.delivered_at), count(d.rendered_at), count(d.read_at) \
         FROM ({}) a LEFT JOIN deliveries d ON d.broadcast_id = $1 AND d.user_id = a.user_id",
        audience_sql(b.target.target_type)
    );
    let (targeted, delivered, rendered, read): (i64, i64, i64, i64) =
        sqlx::query_as(&sql).bind(b.id).fetch_one(pool).await.map_err(db_err)?;
    Ok(Counts { targeted, delivered, rendered, read })
}

pub async fn audience_size(pool: &PgPool, b: &Broadcast) -> StoreResult<i64> {
    // The id is bound for the audiences that name it; the condition keeps it used for `ALL`.
    let sql = format!(
        "SELECT count(*) FROM ({}) a WHERE $1::bigint IS NOT NULL",
        audience_sql(b.target.target_type)
    );
    sqlx::query_scalar(&sql).bind(b.id).fetch_one(pool).await.map_err(db_err)
}

pub async fn deliveries(
    pool: &PgPool,
    b: &Broadcast,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT a.user_id, d.delivered_at, d.rendered_at, d.read_at FROM ({}) a \
         LEFT JOIN deliveries d ON d.broadcast_id = $1 AND d.user_id = a.user_id \
         WHERE a.user_id COLLATE \"C\" > $2 ORDER BY a.user_id COLLATE \"C\" LIMIT $3",
        audience_sql(b.target.target_type)
    );
    let rows = sqlx::query(&sql)
        .bind(b.id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(DeliveryRow {
                user_id: r.try_get(0).map_err(db_err)?,
                delivered_at: ts(r.try_get(1).map_err(db_err)?),
                rendered_at: ts(r.try_get(2).map_err(db_err)?),
                read_at: ts(r.try_get(3).map_err(db_err)?),
            })
        })
        .collect()
}

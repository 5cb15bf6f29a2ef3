//! Mapping between SQLite rows and domain types, and the log append every write path shares.

use herald_domain::{Broadcast, BroadcastStatus, EventBody, Priority, Target, TargetType, Timestamp};
use herald_store::StoreError;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

pub const BROADCAST_COLUMNS: &str = "b.id, b.correlation_id, b.sender_id, b.sender_name, b.content, \
     b.priority, b.category, b.target_type, b.target_ids, b.scheduled_at, b.expires_at, \
     b.fire_and_forget, b.status, b.created_at, b.updated_at, b.message_seq";

pub fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("stored {what} '{value}' is not valid"))
}

pub fn ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

pub fn broadcast_from_row(row: &SqliteRow) -> Result<Broadcast, StoreError> {
    let get_str = |name: &str| row.try_get::<String, _>(name).map_err(db_err);
    let priority = get_str("priority")?;
    let target_type = get_str("target_type")?;
    let status = get_str("status")?;
    let correlation = get_str("correlation_id")?;
    let ids_json = get_str("target_ids")?;
    Ok(Broadcast {
        id: row.try_get("id").map_err(db_err)?,
        correlation_id: correlation.parse().map_err(|_| corrupt("correlation id", &correlation))?,
        sender_id: get_str("sender_id")?,
        sender_name: get_str("sender_name")?,
        content: get_str("content")?,
        priority: Priority::parse(&priority).ok_or_else(|| corrupt("priority", &priority))?,
        category: get_str("category")?,
        target: Target {
            target_type: TargetType::parse(&target_type)
                .ok_or_else(|| corrupt("target type", &target_type))?,
            target_ids: serde_json::from_str(&ids_json).map_err(|_| corrupt("target ids", &ids_json))?,
        },
        scheduled_at: ts(row.try_get("scheduled_at").map_err(db_err)?),
        expires_at: ts(row.try_get("expires_at").map_err(db_err)?),
        fire_and_forget: row.try_get("fire_and_forget").map_err(db_err)?,
        status: BroadcastStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(db_err)?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at").map_err(db_err)?),
    })
}

/// Appends an event to the log at the next position, inside the caller's transaction (the
/// `events_advance` trigger moves the last position and a message's `message_seq` along).
pub async fn enqueue_event(
    conn: &mut SqliteConnection,
    body: &EventBody,
    now: Timestamp,
) -> Result<(), StoreError> {
    let payload = serde_json::to_string(body).map_err(|e| StoreError::Backend(e.to_string()))?;
    sqlx::query(
        "INSERT INTO events (seq, kind, broadcast_id, payload, created_at) \
         SELECT last_seq + 1, ?1, ?2, ?3, ?4 FROM relay_state WHERE id = 1",
    )
    .bind(body.kind())
    .bind(body.broadcast_id())
    .bind(payload)
    .bind(now.millis())
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// `b` (aliased `b`) targets the user bound as `?1`.
macro_rules! targets_user {
    () => {
        "(b.target_type = 'ALL' \
          OR (b.target_type = 'SELECTED' AND EXISTS (SELECT 1 FROM broadcast_targets t \
                WHERE t.broadcast_id = b.id AND t.target_id = ?1)) \
          OR (b.target_type = 'ROLE' AND EXISTS (SELECT 1 FROM broadcast_targets t \
                JOIN user_roles r ON r.role = t.target_id WHERE t.broadcast_id = b.id AND r.user_id = ?1)) \
          OR (b.target_type = 'PRODUCT' AND EXISTS (SELECT 1 FROM broadcast_targets t \
                JOIN user_products p ON p.product = t.target_id WHERE t.broadcast_id = b.id AND p.user_id = ?1)))"
    };
}
pub(crate) use targets_user;

/// The user ids of a broadcast's audience, for the broadcast bound as `?1`.
pub fn audience_sql(t: TargetType) -> &'static str {
    match t {
        TargetType::All => "SELECT user_id FROM users",
        TargetType::Selected => "SELECT target_id AS user_id FROM broadcast_targets WHERE broadcast_id = ?1",
        TargetType::Role => {
            "SELECT DISTINCT r.user_id FROM user_roles r \
             JOIN broadcast_targets t ON t.target_id = r.role WHERE t.broadcast_id = ?1"
        }
        TargetType::Product => {
            "SELECT DISTINCT p.user_id FROM user_products p \
             JOIN broadcast_targets t ON t.target_id = p.product WHERE t.broadcast_id = ?1"
        }
    }
}

/// A write transaction that takes SQLite's write lock up front (`BEGIN IMMEDIATE`), so a
/// transaction never fails half-way on a lock upgrade when another connection writes; it waits
/// for the busy timeout instead.
pub async fn begin(pool: &sqlx::SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
}

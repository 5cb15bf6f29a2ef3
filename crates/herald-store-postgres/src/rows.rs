//! Mapping between PostgreSQL rows and domain types, error classification, and the outbox insert
//! every write path shares.

use herald_domain::{Broadcast, BroadcastStatus, EventBody, Priority, Target, TargetType, Timestamp};
use herald_store::StoreError;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

pub const BROADCAST_COLUMNS: &str = "b.id, b.correlation_id, b.sender_id, b.sender_name, b.content, \
     b.priority, b.category, b.target_type, b.target_ids, b.scheduled_at, b.expires_at, \
     b.fire_and_forget, b.status, b.created_at, b.updated_at, b.message_seq";

/// Connection-level failures (server down, restarting, out of connections) are `Unavailable`,
/// so the API answers 503 and the background tasks retry.
pub fn db_err(e: sqlx::Error) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 08: connection exception; 57P: operator intervention (shutdown); 53: resources.
            c.starts_with("08") || c.starts_with("57P") || c.starts_with("53")
        }),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("stored {what} '{value}' is not valid"))
}

pub fn ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

pub fn broadcast_from_row(row: &PgRow) -> Result<Broadcast, StoreError> {
    let get_str = |name: &str| row.try_get::<String, _>(name).map_err(db_err);
    let priority = get_str("priority")?;
    let target_type = get_str("target_type")?;
    let status = get_str("status")?;
    Ok(Broadcast {
        id: row.try_get("id").map_err(db_err)?,
        correlation_id: row.try_get("correlation_id").map_err(db_err)?,
        sender_id: get_str("sender_id")?,
        sender_name: get_str("sender_name")?,
        content: get_str("content")?,
        priority: Priority::parse(&priority).ok_or_else(|| corrupt("priority", &priority))?,
        category: get_str("category")?,
        target: Target {
            target_type: TargetType::parse(&target_type)
                .ok_or_else(|| corrupt("target type", &target_type))?,
            target_ids: row.try_get("target_ids").map_err(db_err)?,
        },
        scheduled_at: ts(row.try_get("scheduled_at").map_err(db_err)?),
        expires_at: ts(row.try_get("expires_at").map_err(db_err)?),
        fire_and_forget: row.try_get("fire_and_forget").map_err(db_err)?,
        status: BroadcastStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(db_err)?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at").map_err(db_err)?),
    })
}

pub const OUTBOX_CHANNEL: &str = "herald_outbox";
pub const SCHEDULE_CHANNEL: &str = "herald_schedule";

/// Puts an event in the outbox and notifies the relay (at commit), inside the caller's transaction.
pub async fn enqueue_event(
    conn: &mut PgConnection,
    body: &EventBody,
    now: Timestamp,
) -> Result<(), StoreError> {
    let payload = serde_json::to_string(body).map_err(|e| StoreError::Backend(e.to_string()))?;
    sqlx::query("INSERT INTO outbox (payload, created_at) VALUES ($1, $2)")
        .bind(payload)
        .bind(now.millis())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    notify(conn, OUTBOX_CHANNEL).await
}

/// `NOTIFY`, delivered to every listening node when the transaction commits.
pub async fn notify(conn: &mut PgConnection, channel: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')").bind(channel).execute(conn).await.map_err(db_err)?;
    Ok(())
}

/// `b` (aliased `b`) targets the user bound as `$1`.
pub const TARGETS_USER: &str = "(b.target_type = 'ALL' \
      OR (b.target_type = 'SELECTED' AND $1 = ANY (b.target_ids)) \
      OR (b.target_type = 'ROLE' AND EXISTS (SELECT 1 FROM user_roles r \
            WHERE r.user_id = $1 AND r.role = ANY (b.target_ids))) \
      OR (b.target_type = 'PRODUCT' AND EXISTS (SELECT 1 FROM user_products p \
            WHERE p.user_id = $1 AND p.product = ANY (b.target_ids))))";

/// The user ids of a broadcast's audience, for the broadcast bound as `$1`.
pub fn audience_sql(t: TargetType) -> &'static str {
    match t {
        TargetType::All => "SELECT user_id FROM users",
        TargetType::Selected => "SELECT unnest(target_ids) AS user_id FROM broadcasts WHERE id = $1",
        TargetType::Role => {
            "SELECT DISTINCT r.user_id FROM user_roles r \
             WHERE r.role = ANY ((SELECT target_ids FROM broadcasts WHERE id = $1)::text[])"
        }
        TargetType::Product => {
            "SELECT DISTINCT p.user_id FROM user_products p \
             WHERE p.product = ANY ((SELECT target_ids FROM broadcasts WHERE id = $1)::text[])"
        }
    }
}

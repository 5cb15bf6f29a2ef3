//! Rows into domain values: one mapping for both backends (the dialects select the correlation id
//! and the target ids as text, so the columns read the same everywhere).

use crate::dialect::Dialect;
use crate::store::SqlStore;
use herald_domain::{Broadcast, BroadcastStatus, Priority, Target, TargetType, Timestamp};
use herald_store::{StoreError, StoreResult};
use sqlx::{ColumnIndex, Database, Decode, Row, Type};

/// A stored value this build cannot read.
#[derive(Debug, thiserror::Error)]
#[error("stored {what} '{value}' is not valid")]
pub(crate) struct Corrupt {
    what: &'static str,
    value: String,
}

pub(crate) fn corrupt(what: &'static str, value: &str) -> StoreError {
    StoreError::corrupt(Corrupt { what, value: value.to_owned() })
}

pub(crate) fn ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

/// Reads column `i` of a row.
pub(crate) fn get<'r, R, T>(row: &'r R, i: usize) -> StoreResult<T>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(row.try_get(i)?)
}

impl<D: Dialect> SqlStore<D>
where
    for<'r> i64: Decode<'r, D::DB> + Type<D::DB>,
    for<'r> String: Decode<'r, D::DB> + Type<D::DB>,
    for<'r> bool: Decode<'r, D::DB> + Type<D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
{
    /// A broadcast from the first 15 columns of [`Dialect::BROADCAST_COLUMNS`].
    pub(crate) fn broadcast_from(row: &<D::DB as Database>::Row) -> StoreResult<Broadcast> {
        let text = |i: usize| get::<_, String>(row, i);
        let (correlation, priority, target_type, ids, status) =
            (text(1)?, text(5)?, text(7)?, text(8)?, text(12)?);
        Ok(Broadcast {
            id: get(row, 0)?,
            correlation_id: correlation.parse().map_err(|_| corrupt("correlation id", &correlation))?,
            sender_id: text(2)?,
            sender_name: text(3)?,
            content: text(4)?,
            priority: Priority::parse(&priority).ok_or_else(|| corrupt("priority", &priority))?,
            category: text(6)?,
            target: Target {
                target_type: TargetType::parse(&target_type)
                    .ok_or_else(|| corrupt("target type", &target_type))?,
                target_ids: serde_json::from_str(&ids).map_err(|_| corrupt("target ids", &ids))?,
            },
            scheduled_at: ts(get(row, 9)?),
            expires_at: ts(get(row, 10)?),
            fire_and_forget: get(row, 11)?,
            status: BroadcastStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
            created_at: Timestamp::from_millis(get(row, 13)?),
            updated_at: Timestamp::from_millis(get(row, 14)?),
        })
    }
}

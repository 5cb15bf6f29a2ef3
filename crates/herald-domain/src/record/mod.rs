//! The event record: how an event is written to the log and carried between nodes. It is a type
//! of its own with a version number, apart from the HTTP shapes, so renaming an API field cannot
//! break the replay of stored events, and nodes of two versions can share a bus during a rolling
//! upgrade (each reads every version it knows).
//!
//! Version 1 is JSON with snake_case fields and times in milliseconds. Records that earlier builds
//! stored carry no version (version 0): they are still read. A record of a version this build does
//! not know is an error ([`DecodeError::UnknownVersion`]), never a guess.

use crate::broadcast::{Broadcast, BroadcastStatus, Priority, Target, TargetType};
use crate::event::{Event, EventBody, RemovalReason};
use crate::time::Timestamp;
use crate::user::{User, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The version this build writes.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("event record version {0} is newer than this build understands (it reads up to {VERSION})")]
    UnknownVersion(u64),
    #[error("event record is not valid: {0}")]
    Malformed(String),
}

/// The record of an event body (the log keeps the position in a column of its own).
pub fn encode(body: &EventBody) -> String {
    to_json(&V1 { v: VERSION, seq: None, body: BodyV1::from(body) })
}

/// The record of a positioned event, as it travels on the bus.
pub fn encode_event(event: &Event) -> String {
    to_json(&V1 { v: VERSION, seq: Some(event.seq), body: BodyV1::from(&event.body) })
}

fn to_json(record: &V1) -> String {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string(record).unwrap_or_default()
}

/// Reads a record of any known version: the body, and the position when the record carries one.
pub fn decode(text: &str) -> Result<(EventBody, Option<i64>), DecodeError> {
    #[derive(Deserialize)]
    struct Version {
        v: Option<serde_json::Value>,
    }
    let malformed = |e: serde_json::Error| DecodeError::Malformed(e.to_string());
    let version: Version = serde_json::from_str(text).map_err(malformed)?;
    match version.v {
        None => {
            let legacy: legacy::Body = serde_json::from_str(text).map_err(malformed)?;
            Ok((legacy.into_body()?, None))
        }
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(1) => {
            let record: V1 = serde_json::from_str(text).map_err(malformed)?;
            Ok((record.body.into_body()?, record.seq))
        }
        Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => {
            Err(DecodeError::UnknownVersion(n.as_u64().unwrap_or_default()))
        }
        Some(other) => Err(DecodeError::Malformed(format!("version {other} is not a number"))),
    }
}

#[derive(Serialize, Deserialize)]
struct V1 {
    v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(flatten)]
    body: BodyV1,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
enum BodyV1 {
    Message { broadcast: Box<BroadcastV1> },
    MessageRemoved { broadcast_id: i64, reason: String, target: TargetV1 },
    ReadReceipt { user_id: String, broadcast_id: i64, read_at: i64 },
    UserChanged { user_id: String, roles: BTreeSet<String>, products: BTreeSet<String>, deleted: bool },
}

#[derive(Serialize, Deserialize)]
struct TargetV1 {
    #[serde(rename = "type")]
    kind: String,
    ids: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct BroadcastV1 {
    id: i64,
    correlation_id: Uuid,
    sender_id: String,
    sender_name: String,
    content: String,
    priority: String,
    category: String,
    target: TargetV1,
    scheduled_at: Option<i64>,
    expires_at: Option<i64>,
    fire_and_forget: bool,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl From<&EventBody> for BodyV1 {
    fn from(body: &EventBody) -> Self {
        match body {
            EventBody::Message { broadcast } => {
                Self::Message { broadcast: Box::new(BroadcastV1::from(broadcast)) }
            }
            EventBody::MessageRemoved { broadcast_id, reason, target } => Self::MessageRemoved {
                broadcast_id: *broadcast_id,
                reason: reason.as_str().to_owned(),
                target: TargetV1::from(target),
            },
            EventBody::ReadReceipt { user_id, broadcast_id, read_at } => Self::ReadReceipt {
                user_id: user_id.clone(),
                broadcast_id: *broadcast_id,
                read_at: read_at.millis(),
            },
            EventBody::UserChanged { user, deleted } => Self::UserChanged {
                user_id: user.user_id.to_string(),
                roles: user.roles.clone(),
                products: user.products.clone(),
                deleted: *deleted,
            },
        }
    }
}

impl BodyV1 {
    fn into_body(self) -> Result<EventBody, DecodeError> {
        Ok(match self {
            Self::Message { broadcast } => EventBody::Message { broadcast: broadcast.into_broadcast()? },
            Self::MessageRemoved { broadcast_id, reason, target } => EventBody::MessageRemoved {
                broadcast_id,
                reason: parse(&reason, RemovalReason::parse, "reason")?,
                target: target.into_target()?,
            },
            Self::ReadReceipt { user_id, broadcast_id, read_at } => {
                EventBody::ReadReceipt { user_id, broadcast_id, read_at: Timestamp::from_millis(read_at) }
            }
            Self::UserChanged { user_id, roles, products, deleted } => {
                let user_id =
                    UserId::parse("user_id", &user_id).map_err(|e| DecodeError::Malformed(e.to_string()))?;
                EventBody::UserChanged { user: User { user_id, roles, products }, deleted }
            }
        })
    }
}

impl From<&Target> for TargetV1 {
    fn from(t: &Target) -> Self {
        Self { kind: t.target_type.as_str().to_owned(), ids: t.target_ids.clone() }
    }
}

impl TargetV1 {
    fn into_target(self) -> Result<Target, DecodeError> {
        Ok(Target { target_type: parse(&self.kind, TargetType::parse, "target type")?, target_ids: self.ids })
    }
}

impl From<&Broadcast> for BroadcastV1 {
    fn from(b: &Broadcast) -> Self {
        Self {
            id: b.id,
            correlation_id: b.correlation_id,
            sender_id: b.sender_id.clone(),
            sender_name: b.sender_name.clone(),
            content: b.content.clone(),
            priority: b.priority.as_str().to_owned(),
            category: b.category.clone(),
            target: TargetV1::from(&b.target),
            scheduled_at: b.scheduled_at.map(Timestamp::millis),
            expires_at: b.expires_at.map(Timestamp::millis),
            fire_and_forget: b.fire_and_forget,
            status: b.status.as_str().to_owned(),
            created_at: b.created_at.millis(),
            updated_at: b.updated_at.millis(),
        }
    }
}

impl BroadcastV1 {
    fn into_broadcast(self) -> Result<Broadcast, DecodeError> {
        Ok(Broadcast {
            id: self.id,
            correlation_id: self.correlation_id,
            sender_id: self.sender_id,
            sender_name: self.sender_name,
            content: self.content,
            priority: parse(&self.priority, Priority::parse, "priority")?,
            category: self.category,
            target: self.target.into_target()?,
            scheduled_at: self.scheduled_at.map(Timestamp::from_millis),
            expires_at: self.expires_at.map(Timestamp::from_millis),
            fire_and_forget: self.fire_and_forget,
            status: parse(&self.status, BroadcastStatus::parse, "status")?,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

fn parse<T>(text: &str, f: impl Fn(&str) -> Option<T>, what: &str) -> Result<T, DecodeError> {
    f(text).ok_or_else(|| DecodeError::Malformed(format!("{what} '{text}' is not known")))
}

/// Version 0: the records earlier builds stored (the serde shapes of the domain types then).
mod legacy;

#[cfg(test)]
mod tests;

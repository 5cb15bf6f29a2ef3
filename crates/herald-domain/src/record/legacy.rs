//! Records without a version: the serde shapes of the domain types as builds before the versioned
//! format stored them (camelCase broadcasts, RFC 3339 times). Frozen here, read only.

use super::{parse, DecodeError};
use crate::broadcast::{Broadcast, BroadcastStatus, Priority, Target, TargetType};
use crate::event::{EventBody, RemovalReason};
use crate::time::Timestamp;
use crate::user::{User, UserId};
use serde::Deserialize;
use std::collections::BTreeSet;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum Body {
    Message { broadcast: Box<LegacyBroadcast> },
    MessageRemoved { broadcast_id: i64, reason: String, target: LegacyTarget },
    ReadReceipt { user_id: String, broadcast_id: i64, read_at: String },
    UserChanged { user: LegacyUser, deleted: bool },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LegacyTarget {
    target_type: String,
    target_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LegacyUser {
    user_id: String,
    #[serde(default)]
    roles: BTreeSet<String>,
    #[serde(default)]
    products: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LegacyBroadcast {
    id: i64,
    correlation_id: Uuid,
    sender_id: String,
    sender_name: String,
    content: String,
    priority: String,
    category: String,
    #[serde(flatten)]
    target: LegacyTarget,
    scheduled_at: Option<String>,
    expires_at: Option<String>,
    fire_and_forget: bool,
    status: String,
    created_at: String,
    updated_at: String,
}

fn time(text: &str) -> Result<Timestamp, DecodeError> {
    Timestamp::parse(text).map_err(DecodeError::Malformed)
}

fn optional_time(text: Option<String>) -> Result<Option<Timestamp>, DecodeError> {
    text.as_deref().map(time).transpose()
}

impl LegacyTarget {
    fn into_target(self) -> Result<Target, DecodeError> {
        Ok(Target {
            target_type: parse(&self.target_type, TargetType::parse, "target type")?,
            target_ids: self.target_ids,
        })
    }
}

impl Body {
    pub(super) fn into_body(self) -> Result<EventBody, DecodeError> {
        Ok(match self {
            Self::Message { broadcast: b } => EventBody::Message {
                broadcast: Broadcast {
                    id: b.id,
                    correlation_id: b.correlation_id,
                    sender_id: b.sender_id,
                    sender_name: b.sender_name,
                    content: b.content,
                    priority: parse(&b.priority, Priority::parse, "priority")?,
                    category: b.category,
                    target: b.target.into_target()?,
                    scheduled_at: optional_time(b.scheduled_at)?,
                    expires_at: optional_time(b.expires_at)?,
                    fire_and_forget: b.fire_and_forget,
                    status: parse(&b.status, BroadcastStatus::parse, "status")?,
                    created_at: time(&b.created_at)?,
                    updated_at: time(&b.updated_at)?,
                },
            },
            Self::MessageRemoved { broadcast_id, reason, target } => EventBody::MessageRemoved {
                broadcast_id,
                reason: parse(&reason, RemovalReason::parse, "reason")?,
                target: target.into_target()?,
            },
            Self::ReadReceipt { user_id, broadcast_id, read_at } => {
                EventBody::ReadReceipt { user_id, broadcast_id, read_at: time(&read_at)? }
            }
            Self::UserChanged { user, deleted } => {
                let user_id = UserId::parse("userId", &user.user_id)
                    .map_err(|e| DecodeError::Malformed(e.to_string()))?;
                EventBody::UserChanged {
                    user: User { user_id, roles: user.roles, products: user.products },
                    deleted,
                }
            }
        })
    }
}

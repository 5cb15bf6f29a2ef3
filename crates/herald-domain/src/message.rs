//! The message object: how a broadcast looks to one user, in the inbox and on the stream.

use crate::broadcast::{Broadcast, Priority};
use crate::time::Timestamp;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReadStatus {
    Unread,
    Read,
}

/// The message object of SPEC section 3. On the stream the per-user fields are left out
/// (`user_id`, `delivered_at`, `read_at` are `None` and skipped) so one serialization serves
/// every recipient.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView<'a> {
    /// The id of the user's copy. A user holds at most one copy of a broadcast, so it is the
    /// broadcast's id: the same in the inbox and on the stream, on every node.
    pub user_message_id: i64,
    pub broadcast_id: i64,
    pub correlation_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    pub sender_id: &'a str,
    pub sender_name: &'a str,
    pub content: &'a str,
    pub priority: Priority,
    pub category: &'a str,
    pub broadcast_created_at: Timestamp,
    /// When the copy became the user's: the broadcast's `createdAt`, or its `scheduledAt` when
    /// that is later.
    pub created_at: Timestamp,
    pub scheduled_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub delivery_status: DeliveryStatus,
    pub read_status: ReadStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<Timestamp>,
    pub fire_and_forget: bool,
}

impl<'a> MessageView<'a> {
    /// The shared, user-less form sent on streams.
    pub fn for_stream(b: &'a Broadcast) -> Self {
        Self {
            user_message_id: b.id,
            broadcast_id: b.id,
            correlation_id: b.correlation_id,
            user_id: None,
            sender_id: &b.sender_id,
            sender_name: &b.sender_name,
            content: &b.content,
            priority: b.priority,
            category: &b.category,
            broadcast_created_at: b.created_at,
            created_at: b.scheduled_at.map_or(b.created_at, |at| at.max(b.created_at)),
            scheduled_at: b.scheduled_at,
            expires_at: b.expires_at,
            delivery_status: DeliveryStatus::Delivered,
            read_status: ReadStatus::Unread,
            delivered_at: None,
            read_at: None,
            fire_and_forget: b.fire_and_forget,
        }
    }

    /// The per-user form of the inbox.
    pub fn for_user(
        b: &'a Broadcast,
        user_id: &'a str,
        delivered_at: Option<Timestamp>,
        read_at: Option<Timestamp>,
    ) -> Self {
        Self {
            user_id: Some(user_id),
            delivery_status: if delivered_at.is_some() {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Pending
            },
            read_status: if read_at.is_some() { ReadStatus::Read } else { ReadStatus::Unread },
            delivered_at,
            read_at,
            ..Self::for_stream(b)
        }
    }
}

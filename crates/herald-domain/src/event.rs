//! Events of the ordered log: what the relay publishes and every node's hub hands to streams.

use crate::broadcast::{Broadcast, Target};
use crate::time::Timestamp;
use crate::user::User;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RemovalReason {
    Cancelled,
    Expired,
}

impl RemovalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Cancelled, Self::Expired].into_iter().find(|r| r.as_str() == text)
    }
}

/// What happened. `UserChanged` is internal: it keeps every node's view of connected users'
/// roles and products current and is never sent to clients.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    Message { broadcast: Broadcast },
    MessageRemoved { broadcast_id: i64, reason: RemovalReason, target: Target },
    ReadReceipt { user_id: String, broadcast_id: i64, read_at: Timestamp },
    UserChanged { user: User, deleted: bool },
}

/// An event with its position in the log (`seq`), assigned by the store; strictly increasing,
/// never reused.
/// Stored and carried between nodes as a versioned record (`record`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub body: EventBody,
}

impl EventBody {
    /// The SSE event name, or `None` for internal events.
    pub fn sse_name(&self) -> Option<&'static str> {
        match self {
            Self::Message { .. } => Some("MESSAGE"),
            Self::MessageRemoved { .. } => Some("MESSAGE_REMOVED"),
            Self::ReadReceipt { .. } => Some("READ_RECEIPT"),
            Self::UserChanged { .. } => None,
        }
    }

    /// The kind stored with the event in the log: its SSE name, or `USER_CHANGED`.
    pub fn kind(&self) -> &'static str {
        self.sse_name().unwrap_or("USER_CHANGED")
    }

    /// The broadcast the event is about, if any.
    pub fn broadcast_id(&self) -> Option<i64> {
        match self {
            Self::Message { broadcast } => Some(broadcast.id),
            Self::MessageRemoved { broadcast_id, .. } | Self::ReadReceipt { broadcast_id, .. } => {
                Some(*broadcast_id)
            }
            Self::UserChanged { .. } => None,
        }
    }

    /// Whether a client event concerns `user` (audience for messages and removals, the user
    /// itself for read receipts).
    pub fn concerns(&self, user: &User) -> bool {
        match self {
            Self::Message { broadcast } => broadcast.target.includes(user),
            Self::MessageRemoved { target, .. } => target.includes(user),
            Self::ReadReceipt { user_id, .. } => user_id == user.user_id.as_str(),
            Self::UserChanged { .. } => false,
        }
    }

    /// The `data` JSON of the client event (one line), or `None` for internal events.
    pub fn client_data(&self) -> Option<String> {
        let value = match self {
            Self::Message { broadcast } => {
                serde_json::to_value(crate::message::MessageView::for_stream(broadcast))
            }
            Self::MessageRemoved { broadcast_id, reason, .. } => Ok(serde_json::json!({
                "broadcastId": broadcast_id,
                "reason": reason,
            })),
            Self::ReadReceipt { broadcast_id, read_at, .. } => Ok(serde_json::json!({
                "broadcastId": broadcast_id,
                "readAt": read_at,
            })),
            Self::UserChanged { .. } => return None,
        };
        value.ok().map(|v| v.to_string())
    }
}

//! Plain data exchanged with a [`crate::Store`].

use herald_domain::{Broadcast, BroadcastStatus, Timestamp};
use std::sync::Arc;
use tokio::sync::{broadcast, watch, Notify};

/// Which broadcasts an admin list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    All,
    Active,
    Scheduled,
    Expired,
    Cancelled,
}

impl ListFilter {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "all" => Some(Self::All),
            "active" => Some(Self::Active),
            "scheduled" => Some(Self::Scheduled),
            "expired" => Some(Self::Expired),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    /// The one status the filter lists, or `None` for all.
    pub fn status(self) -> Option<BroadcastStatus> {
        match self {
            Self::All => None,
            Self::Active => Some(BroadcastStatus::Active),
            Self::Scheduled => Some(BroadcastStatus::Scheduled),
            Self::Expired => Some(BroadcastStatus::Expired),
            Self::Cancelled => Some(BroadcastStatus::Cancelled),
        }
    }
}

/// Counts over a broadcast's audience, derived from the per-user records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub targeted: i64,
    pub delivered: i64,
    pub rendered: i64,
    pub read: i64,
}

/// One audience member's state for a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub user_id: String,
    pub delivered_at: Option<Timestamp>,
    pub rendered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
}

/// A broadcast as one user sees it.
#[derive(Debug, Clone)]
pub struct InboxItem {
    pub broadcast: Broadcast,
    pub delivered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    /// Position of the broadcast's `MESSAGE` event, once relayed.
    pub message_seq: Option<i64>,
}

/// "Broadcast `broadcast_id` reached `user_id` at `at`"; `read` for fire-and-forget, which
/// counts as read on delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryMark {
    pub broadcast_id: i64,
    pub user_id: Arc<str>,
    pub at: Timestamp,
    pub read: bool,
}

/// What one scheduler pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DueWork {
    pub activated: usize,
    pub expired: usize,
}

/// The retained part of the event log: `first` is the oldest retained position (if any),
/// `last` the newest position ever assigned (0 before the first event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventRange {
    pub first: Option<i64>,
    pub last: i64,
}

/// Wake-ups a backend gives after committing: `outbox` when events await the relay, `schedule`
/// when a due time may have moved earlier; `log_head`, the newest logged position any node
/// appended (PostgreSQL tells every node; SQLite, one node by nature, leaves it at 0); and
/// `disconnect`, users whose streams every node closes.
#[derive(Debug)]
pub struct Signals {
    pub outbox: Notify,
    pub schedule: Notify,
    pub log_head: watch::Sender<i64>,
    pub disconnect: broadcast::Sender<Disconnect>,
}

/// A request to close one of a user's streams, wherever it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub user: String,
    pub connection_id: String,
}

impl Disconnect {
    /// The `NOTIFY` payload: user and connection id (neither may hold a space).
    pub fn to_payload(&self) -> String {
        format!("{} {}", self.user, self.connection_id)
    }

    pub fn from_payload(payload: &str) -> Option<Self> {
        let (user, connection_id) = payload.split_once(' ')?;
        Some(Self { user: user.to_owned(), connection_id: connection_id.to_owned() })
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            outbox: Notify::new(),
            schedule: Notify::new(),
            log_head: watch::channel(0).0,
            disconnect: broadcast::channel(256).0,
        }
    }
}

impl Signals {
    /// Raises the newest logged position to `seq` (notifications may arrive out of order).
    pub fn logged(&self, seq: i64) {
        self.log_head.send_if_modified(|head| {
            let newer = seq > *head;
            if newer {
                *head = seq;
            }
            newer
        });
    }
}

/// Where the relay stands with a cluster bus: the last position it published and the bus's own
/// position after it (for Kafka, the next offset). Both `None` until a cluster bus published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayMark {
    pub published_seq: Option<i64>,
    pub bus_offset: Option<i64>,
}

/// A record of the bus a node could not decode or apply, as the dead-letter list keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub broadcast_id: Option<i64>,
    pub correlation_id: Option<String>,
    pub original_key: Option<String>,
    pub original_topic: String,
    pub original_partition: i32,
    pub original_offset: i64,
    pub exception_message: String,
    /// A short cause chain, one cause per line.
    pub exception_stack_trace: String,
    pub failed_at: Timestamp,
    /// The record's bytes as text (invalid UTF-8 replaced by U+FFFD).
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub letter: NewDeadLetter,
}

/// An open stream as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Unique per open stream (connection ids are the client's choice and may repeat).
    pub key: String,
    pub connection_id: String,
    pub node_id: String,
    pub user_id: String,
}

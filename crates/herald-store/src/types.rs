//! Plain data exchanged with a [`crate::Store`].

use herald_domain::{Broadcast, BroadcastStatus, Timestamp};
use std::sync::Arc;
use tokio::sync::Notify;

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
/// when a due time may have moved earlier.
#[derive(Debug, Default)]
pub struct Signals {
    pub outbox: Notify,
    pub schedule: Notify,
}

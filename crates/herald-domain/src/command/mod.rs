//! Write-side decisions. Each command takes the current state and the time and returns the new
//! state with the events to log ([`Change`]), or why it is refused ([`Refusal`]). The storage
//! backends only load the rows, call these, save what they return and append the events: no rule
//! of the status machine, the audience or the read state is decided anywhere else.

use crate::broadcast::{Broadcast, BroadcastStatus, TransitionError};
use crate::event::{EventBody, RemovalReason};
use crate::time::Timestamp;
use crate::user::User;
use crate::validate::NewBroadcast;
use uuid::Uuid;

/// A new state and the events that announce it (none when nothing a client must hear changed).
#[derive(Debug, Clone, PartialEq)]
pub struct Change<T> {
    pub state: T,
    pub events: Vec<EventBody>,
}

impl<T> Change<T> {
    fn quiet(state: T) -> Self {
        Self { state, events: Vec::new() }
    }
}

/// Why a command does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("broadcast {broadcast_id} is not addressed to user {user_id}")]
    NotTargeted { broadcast_id: i64, user_id: String },
    #[error("broadcast {0} is scheduled and cannot be read or acknowledged before it is active")]
    NotYetActive(i64),
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// One user's state of one broadcast (the per-user record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered_at: Option<Timestamp>,
    pub rendered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
}

/// A validated broadcast becomes a stored one; when it goes out now, its `MESSAGE` is logged with it.
pub fn create(new: NewBroadcast, id: i64, correlation_id: Uuid, now: Timestamp) -> Change<Broadcast> {
    let broadcast = new.into_broadcast(id, correlation_id, now);
    let events = match broadcast.status {
        BroadcastStatus::Active => vec![EventBody::Message { broadcast: broadcast.clone() }],
        _ => Vec::new(),
    };
    Change { state: broadcast, events }
}

/// Cancels a scheduled or active broadcast; only an active one was out, so only it is removed
/// from the streams.
pub fn cancel(b: &Broadcast, now: Timestamp) -> Result<Change<Broadcast>, Refusal> {
    let mut next = b.clone();
    next.status = b.status.transition(BroadcastStatus::Cancelled)?;
    next.updated_at = now;
    let events = match b.status {
        BroadcastStatus::Active => vec![removed(&next, RemovalReason::Cancelled)],
        _ => Vec::new(),
    };
    Ok(Change { state: next, events })
}

/// What the scheduler does with `b` at `now`: activate it when its time came (or expire it
/// unsent if its whole window passed meanwhile), expire it when its expiry came, or nothing.
pub fn due(b: &Broadcast, now: Timestamp) -> Option<Change<Broadcast>> {
    let expired = b.expires_at.is_some_and(|e| e <= now);
    let mut next = b.clone();
    next.updated_at = now;
    match b.status {
        BroadcastStatus::Scheduled if b.scheduled_at.is_none_or(|s| s <= now) => {
            if expired {
                // Its whole window passed while nothing ran: it ends without reaching anyone.
                next.status = BroadcastStatus::Expired;
                return Some(Change::quiet(next));
            }
            next.status = BroadcastStatus::Active;
            Some(Change { events: vec![EventBody::Message { broadcast: next.clone() }], state: next })
        }
        BroadcastStatus::Active if expired => {
            next.status = BroadcastStatus::Expired;
            Some(Change { events: vec![removed(&next, RemovalReason::Expired)], state: next })
        }
        _ => None,
    }
}

fn removed(b: &Broadcast, reason: RemovalReason) -> EventBody {
    EventBody::MessageRemoved { broadcast_id: b.id, reason, target: b.target.clone() }
}

/// A user may read or acknowledge a broadcast addressed to it that has gone out (an expired or
/// cancelled one too: it was delivered while active).
fn check_reachable(b: &Broadcast, user: &User) -> Result<(), Refusal> {
    if !b.target.includes(user) {
        return Err(Refusal::NotTargeted { broadcast_id: b.id, user_id: user.user_id.to_string() });
    }
    if b.status == BroadcastStatus::Scheduled {
        return Err(Refusal::NotYetActive(b.id));
    }
    Ok(())
}

/// Marks read (reading counts as delivered too). The receipt goes out the first time only.
pub fn read(b: &Broadcast, user: &User, d: Delivery, now: Timestamp) -> Result<Change<Delivery>, Refusal> {
    check_reachable(b, user)?;
    Ok(read_unchecked(b.id, user, d, now))
}

/// [`read`] for a broadcast already known to be in the user's inbox (read-all).
pub fn read_unchecked(broadcast_id: i64, user: &User, d: Delivery, now: Timestamp) -> Change<Delivery> {
    if d.read_at.is_some() {
        return Change::quiet(d);
    }
    let state = Delivery { delivered_at: d.delivered_at.or(Some(now)), read_at: Some(now), ..d };
    let receipt = EventBody::ReadReceipt { user_id: user.user_id.to_string(), broadcast_id, read_at: now };
    Change { state, events: vec![receipt] }
}

/// The visibility acknowledgement: sets `renderedAt` the first time (and delivery, if missing).
pub fn acknowledge(
    b: &Broadcast,
    user: &User,
    d: Delivery,
    now: Timestamp,
) -> Result<Change<Delivery>, Refusal> {
    check_reachable(b, user)?;
    let state = Delivery {
        delivered_at: d.delivered_at.or(Some(now)),
        rendered_at: d.rendered_at.or(Some(now)),
        ..d
    };
    Ok(Change::quiet(state))
}

/// Creating or replacing a user's roles and products: every node's view of it follows.
pub fn put_user(user: User) -> Change<User> {
    Change { events: vec![EventBody::UserChanged { user: user.clone(), deleted: false }], state: user }
}

/// Removing a user from the directory (its delivery history stays).
pub fn delete_user(user: User) -> Change<User> {
    let bare = User::bare(user.user_id);
    Change { events: vec![EventBody::UserChanged { user: bare.clone(), deleted: true }], state: bare }
}

#[cfg(test)]
mod tests;

//! Herald's domain: the rules of broadcasts, audiences, per-user state and events, with no I/O.
//!
//! Everything here is pure data and pure functions so that it can be unit- and property-tested
//! without a database or a network; the storage backends and the server build on these types.

pub mod broadcast;
pub mod command;
pub mod error;
pub mod event;
pub mod message;
pub mod record;
pub mod time;
pub mod user;
pub mod validate;

pub use broadcast::{same_name, Broadcast, BroadcastStatus, Priority, Target, TargetType, TransitionError};
pub use command::{Change, Delivery, Refusal};
pub use error::FieldError;
pub use event::{Event, EventBody, RemovalReason};
pub use message::{DeliveryStatus, MessageView, ReadStatus};
pub use time::{Clock, SystemClock, Timestamp};
pub use user::{demo_users, User, UserId};
pub use validate::{CreateBroadcastRequest, NewBroadcast};

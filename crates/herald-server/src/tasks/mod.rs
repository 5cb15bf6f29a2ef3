//! The long-lived tasks of a node: the leader lease, and while leading the relay, the scheduler
//! and log pruning; on every node the feed (the bus into the hub) and heartbeats. Each is
//! cancellable and awaited at shutdown.

pub mod feed;
pub mod housekeeping;
pub mod leader;
pub mod relay;
pub mod scheduler;

//! The event-bus seam: how positioned events travel from the relay (on the leader) to every
//! node's hub. [`MemoryBus`] serves a single node; a cluster bus (Kafka, `herald-bus-kafka`)
//! implements the same trait and hands records it cannot read to a [`DeadLetters`] keeper.

use async_trait::async_trait;
use herald_domain::Event;
use std::sync::Arc;
use tokio::sync::broadcast;

/// A node's feed of events in log order. A receiver that falls more than the channel's capacity
/// behind gets `Lagged` and must refill the gap from the store.
pub type Subscription = broadcast::Receiver<Arc<Event>>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes events in the given order; they reach every node's subscription in that order.
    /// `Ok` means the bus acknowledged every one; it returns the bus's own position after the
    /// last (for Kafka, the next offset), when it has one.
    async fn publish(&self, events: Vec<Arc<Event>>) -> Result<Option<i64>, BusError>;
    /// This node's feed, starting with the next published event.
    fn subscribe(&self) -> Subscription;
    /// Whether the bus is reachable, for readiness.
    async fn ping(&self) -> Result<(), BusError>;
    /// Whether the bus carries events between nodes (then the relay resumes from its mark and
    /// every node reads what it published); false for the in-process bus.
    fn spans_nodes(&self) -> bool {
        false
    }
    /// Stops consuming; the subscriptions end.
    async fn close(&self) {}
}

/// A record of the bus that a node could not read, as it was received.
#[derive(Debug, Clone)]
pub struct BadRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// Why it could not be read, then its causes, outermost first.
    pub causes: Vec<String>,
}

/// Keeps records a node could not read (the dead-letter list).
#[async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Keeps `record`; true when it was not kept already (another node may have seen it first).
    async fn keep(&self, record: &BadRecord) -> bool;
}

/// The in-process bus: a bounded broadcast channel inside one process.
pub struct MemoryBus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl MemoryBus {
    pub fn new(capacity: usize) -> Self {
        Self { tx: broadcast::channel(capacity.max(1)).0 }
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, events: Vec<Arc<Event>>) -> Result<Option<i64>, BusError> {
        for event in events {
            // No subscriber yet is not an error: the log holds the event for replay.
            let _ = self.tx.send(event);
        }
        Ok(None)
    }

    fn subscribe(&self) -> Subscription {
        self.tx.subscribe()
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::{EventBody, User, UserId};

    fn event(seq: i64) -> Arc<Event> {
        let user = User::bare(UserId::parse("userId", "u1").unwrap());
        Arc::new(Event { seq, body: EventBody::UserChanged { user, deleted: false } })
    }

    #[tokio::test]
    async fn subscribers_receive_events_in_published_order() {
        let bus = MemoryBus::new(16);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.publish(vec![event(1), event(2), event(3)]).await.unwrap();
        for rx in [&mut a, &mut b] {
            let seqs: Vec<i64> = [rx.recv().await, rx.recv().await, rx.recv().await]
                .into_iter()
                .map(|e| e.unwrap().seq)
                .collect();
            assert_eq!(seqs, [1, 2, 3]);
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_it_lagged() {
        let bus = MemoryBus::new(2);
        let mut rx = bus.subscribe();
        bus.publish((1..=5).map(event).collect()).await.unwrap();
        assert!(matches!(rx.recv().await, Err(broadcast::error::RecvError::Lagged(3))));
        assert_eq!(rx.recv().await.unwrap().seq, 4);
    }
}

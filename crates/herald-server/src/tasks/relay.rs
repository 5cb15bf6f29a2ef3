//! The relay (on the leader): hands committed events to the bus in log order. It asks the store
//! for the events after the last one it published (PostgreSQL first moves committed outbox rows
//! into the log), sleeps until a backend signals new ones, and on a database error backs off and
//! retries, so events committed during an outage go out once the database is back.

use crate::metrics::Metrics;
use crate::report::Chain;
use herald_bus::EventBus;
use herald_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const BATCH: u32 = 500;

#[derive(Clone)]
pub struct Relay {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub metrics: Arc<Metrics>,
}

impl Relay {
    /// Publishes from the log's current head on: what was logged before reached the nodes
    /// through an earlier relay, or reaches them through their feeds, which refill any gap.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(mut cursor) = self.head(&shutdown).await else { return };
        let mut backoff = Duration::from_millis(100);
        loop {
            let batch = async { self.store.relay_batch(cursor, BATCH).await }
                .instrument(tracing::debug_span!("relay batch", after = cursor))
                .await;
            match batch {
                Ok(events) if events.is_empty() => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = self.store.signals().outbox.notified() => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
                Ok(events) => {
                    backoff = Duration::from_millis(100);
                    cursor = events.last().map_or(cursor, |e| e.seq);
                    Metrics::add(&self.metrics.events_relayed_total, events.len() as u64);
                    if let Err(e) = self.bus.publish(events.into_iter().map(Arc::new).collect()).await {
                        // Every node refills gaps from the log.
                        tracing::warn!(error = %Chain(&e), "publishing events failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %Chain(&e), "relay could not read new events; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// The last logged position, retried until the database answers (`None`: shutting down).
    async fn head(&self, shutdown: &CancellationToken) -> Option<i64> {
        loop {
            match self.store.event_range().await {
                Ok(range) => return Some(range.last),
                Err(e) => tracing::warn!(error = %Chain(&e), "relay cannot read the log position; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.cancelled() => return None,
            }
        }
    }
}

//! The relay (on the leader): hands committed events to the bus in log order. It asks the store
//! for the events after the last one it published (PostgreSQL first moves committed outbox rows
//! into the log), sleeps until a backend signals new ones, and on a database error backs off and
//! retries, so events committed during an outage go out once the database is back.
//!
//! With a bus that spans nodes (Kafka) an event counts as relayed only once the bus acknowledged
//! it: the relay keeps its mark in the database (the last position published, the bus offset
//! after it), resumes from that mark when it starts (on any node that takes the lease), and on a
//! failed publish retries the same events with a growing pause. Nodes skip positions they already
//! have, so a batch published twice is delivered once.

use crate::metrics::Metrics;
use crate::report::Chain;
use herald_bus::EventBus;
use herald_store::{RelayMark, Store};
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
    /// Publishes from the log's current head on (in-process bus: what was logged before reached
    /// the nodes through an earlier relay, or reaches them through their feeds, which refill any
    /// gap), or from the relay's mark (a bus that spans nodes).
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(mut cursor) = self.start(&shutdown).await else { return };
        let mut backoff = Duration::from_millis(100);
        let mut failing = false;
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
                    let (last, n) = (events.last().map_or(cursor, |e| e.seq), events.len() as u64);
                    match self.bus.publish(events.into_iter().map(Arc::new).collect()).await {
                        Ok(bus_offset) => {
                            if failing {
                                tracing::info!(after = cursor, "publishing events again");
                                failing = false;
                            }
                            backoff = Duration::from_millis(100);
                            cursor = last;
                            Metrics::add(&self.metrics.events_relayed_total, n);
                            self.mark(RelayMark { published_seq: Some(last), bus_offset }).await;
                        }
                        Err(e) if !self.bus.spans_nodes() => {
                            // The node's feed refills what it missed from the log.
                            tracing::warn!(error = %Chain(&e), "publishing events failed");
                            cursor = last;
                        }
                        Err(e) => {
                            if !failing {
                                tracing::warn!(error = %Chain(&e), after = cursor, "the bus did not take events; retrying (nodes read them from the database meanwhile)");
                                failing = true;
                            }
                            tokio::select! {
                                _ = tokio::time::sleep(backoff) => {}
                                _ = shutdown.cancelled() => return,
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
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

    /// Remembers how far a bus that spans nodes has taken the log (best effort: a mark that lags
    /// only makes a new leader publish some events again).
    async fn mark(&self, mark: RelayMark) {
        if !self.bus.spans_nodes() {
            return;
        }
        if let Err(e) = self.store.set_relay_mark(mark).await {
            tracing::warn!(error = %Chain(&e), "cannot record the relay's mark");
        }
    }

    /// Where to start: the relay's mark with a bus that spans nodes, else the last logged
    /// position; retried until the database answers (`None`: shutting down).
    async fn start(&self, shutdown: &CancellationToken) -> Option<i64> {
        loop {
            let start = async {
                let head = self.store.event_range().await?.last;
                if !self.bus.spans_nodes() {
                    return Ok(head);
                }
                let mark = self.store.relay_mark().await?;
                Ok::<_, herald_store::StoreError>(mark.published_seq.map_or(head, |p| p.min(head)))
            };
            match start.await {
                Ok(cursor) => return Some(cursor),
                Err(e) => tracing::warn!(error = %Chain(&e), "relay cannot read the log position; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.cancelled() => return None,
            }
        }
    }
}

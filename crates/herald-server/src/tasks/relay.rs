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
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const BATCH: u32 = 500;
/// How often positions are given while the bus is slow or failing.
const POSITION_EVERY: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct Relay {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub metrics: Arc<Metrics>,
    /// With the in-process bus: the last position published by this node's relay, starting at
    /// the head its hub started from, so an event logged before the relay first runs (or while
    /// it was not leading) is still published.
    pub published: Arc<AtomicI64>,
}

impl Relay {
    /// Publishes after what this node's relay last published (in-process bus), or from the
    /// relay's mark in the database (a bus that spans nodes).
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
                    if self.idle(&shutdown).await {
                        return;
                    }
                }
                Ok(events) => {
                    let (last, n) = (events.last().map_or(cursor, |e| e.seq), events.len() as u64);
                    let more = n >= u64::from(BATCH);
                    let publishing = self.bus.publish(events.into_iter().map(Arc::new).collect());
                    match self.positioning_while(publishing).await {
                        Ok(bus_offset) => {
                            if failing {
                                tracing::info!(after = cursor, "publishing events again");
                                failing = false;
                            }
                            backoff = Duration::from_millis(100);
                            cursor = last;
                            self.published.store(last, Ordering::Relaxed);
                            Metrics::add(&self.metrics.events_relayed_total, n);
                            self.mark(RelayMark { published_seq: Some(last), bus_offset }).await;
                            // A short batch was all there was: the next commit wakes the relay
                            // (one read less per broadcast, while its fan-out wants the core).
                            if !more && self.idle(&shutdown).await {
                                return;
                            }
                        }
                        Err(e) if !self.bus.spans_nodes() => {
                            // The node's feed refills what it missed from the log.
                            tracing::warn!(error = %Chain(&e), "publishing events failed");
                            cursor = last;
                            self.published.store(last, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if !failing {
                                tracing::warn!(error = %Chain(&e), after = cursor, "the bus did not take events; retrying (nodes read them from the database meanwhile)");
                                failing = true;
                            }
                            tokio::select! {
                                _ = self.positioning_while(tokio::time::sleep(backoff)) => {}
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

    /// Waits until a commit announces new events (one announced since the last read counts:
    /// the wake-up keeps a permit); true when shutting down instead. Announced events come first,
    /// as when the relay read again after every batch: a commit answered just before shutdown is
    /// still published (and on PostgreSQL given its position) by this process.
    async fn idle(&self, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            biased;
            _ = self.store.signals().outbox.notified() => false,
            _ = shutdown.cancelled() => true,
        }
    }

    /// Awaits `slow` (a publish the bus is slow to take, a pause before retrying it) while still
    /// giving newly committed events their log positions: the nodes read those from the database
    /// when the bus lags, so a broker outage must not hold the log back.
    async fn positioning_while<F: std::future::Future>(&self, slow: F) -> F::Output {
        tokio::pin!(slow);
        loop {
            tokio::select! {
                out = &mut slow => return out,
                _ = tokio::time::sleep(POSITION_EVERY) => {
                    // Positions only: nothing is published past `i64::MAX`.
                    if let Err(e) = self.store.relay_batch(i64::MAX, BATCH).await {
                        tracing::debug!(error = %Chain(&e), "cannot give new events their positions");
                    }
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

    /// Where to start: the relay's mark with a bus that spans nodes, else after what this node
    /// published; retried until the database answers (`None`: shutting down).
    async fn start(&self, shutdown: &CancellationToken) -> Option<i64> {
        loop {
            let start = async {
                let head = self.store.event_range().await?.last;
                if !self.bus.spans_nodes() {
                    return Ok(self.published.load(Ordering::Relaxed).min(head));
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

#[cfg(test)]
mod tests {
    use super::*;
    use herald_bus::MemoryBus;
    use herald_domain::{EventBody, Timestamp, User, UserId};

    /// A write can commit before this node first leads (SQLite logs it at once): the relay must
    /// still publish it, or its streams would not see it until the next event.
    #[tokio::test]
    async fn an_event_logged_before_the_relay_first_runs_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/h.db", dir.path().display());
        let store: Arc<dyn Store> = Arc::new(herald_store_sqlite::open(&url).await.unwrap());
        let head = store.event_range().await.unwrap().last;
        let user = User::bare(UserId::parse("userId", "u-1").unwrap());
        store.append_event(&EventBody::UserChanged { user, deleted: false }, Timestamp::now()).await.unwrap();
        let bus = Arc::new(MemoryBus::new(16));
        let mut feed = bus.subscribe();
        let published = Arc::new(AtomicI64::new(head));
        let relay = Relay { store, bus, metrics: Arc::default(), published: published.clone() };
        let stop = CancellationToken::new();
        let running = tokio::spawn(relay.run(stop.clone()));
        let event =
            tokio::time::timeout(Duration::from_secs(5), feed.recv()).await.expect("published").unwrap();
        assert_eq!(event.seq, head + 1);
        assert_eq!(published.load(Ordering::Relaxed), head + 1);
        stop.cancel();
        running.await.unwrap();
    }
}

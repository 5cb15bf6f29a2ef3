//! The relay: moves committed outbox rows into the ordered log and publishes them on the bus, in
//! order. It sleeps until a backend signals new outbox rows; on a database error it backs off
//! and retries, so events committed during an outage go out once the database is back.

use crate::metrics::Metrics;
use herald_bus::EventBus;
use herald_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BATCH: u32 = 500;

pub async fn run(
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.relay_batch(BATCH).await {
            Ok(events) if events.is_empty() => {
                backoff = Duration::from_millis(100);
                tokio::select! {
                    _ = store.signals().outbox.notified() => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            Ok(events) => {
                backoff = Duration::from_millis(100);
                Metrics::add(&metrics.events_relayed_total, events.len() as u64);
                if let Err(e) = bus.publish(events.into_iter().map(Arc::new).collect()).await {
                    // Logged already; every node refills gaps from the log.
                    tracing::warn!(error = %e, "publishing events failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "relay could not read the outbox; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

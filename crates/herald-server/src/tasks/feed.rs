//! The feed: this node's consumer of the bus. It hands each event to the hub in log order,
//! refilling from the store any positions it missed (a lagging subscription, a gap), and passes
//! the resulting delivery marks to the recorder.

use crate::recorder::Recorder;
use crate::report::Chain;
use crate::stream::Hub;
use herald_bus::Subscription;
use herald_domain::Event;
use herald_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const PAGE: u32 = 1_000;

/// What the feed hands events to, and where it refills gaps from.
pub struct Feed {
    pub hub: Arc<Hub>,
    pub store: Arc<dyn Store>,
    pub recorder: Recorder,
}

impl Feed {
    pub async fn run(self, sub: Subscription, shutdown: CancellationToken) {
        run(self.hub, self.store, sub, self.recorder, shutdown).await
    }
}

async fn run(
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    mut sub: Subscription,
    recorder: Recorder,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            r = sub.recv() => r,
            _ = shutdown.cancelled() => return,
        };
        match next {
            Ok(event) => {
                let head = hub.head();
                if event.seq > head + 1
                    && !refill(&hub, &store, &recorder, head, event.seq - 1, &shutdown).await
                {
                    return;
                }
                deliver(&hub, &recorder, event).await;
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "event feed lagged; refilling from the log");
                let upto = loop {
                    match store.event_range().await {
                        Ok(range) => break range.last,
                        Err(e) => {
                            tracing::warn!(error = %Chain(&e), "cannot read the log position; retrying");
                            if pause(&shutdown).await {
                                return;
                            }
                        }
                    }
                };
                if !refill(&hub, &store, &recorder, hub.head(), upto, &shutdown).await {
                    return;
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn deliver(hub: &Hub, recorder: &Recorder, event: Arc<Event>) {
    let dispatched = hub.dispatch(event);
    recorder.record(dispatched.marks).await;
}

/// Dispatches logged events `after < seq <= upto` from the store; false when shutting down.
async fn refill(
    hub: &Hub,
    store: &Arc<dyn Store>,
    recorder: &Recorder,
    after: i64,
    upto: i64,
    shutdown: &CancellationToken,
) -> bool {
    let span = tracing::info_span!("feed refill", after, upto);
    refill_pages(hub, store, recorder, after, upto, shutdown).instrument(span).await
}

async fn refill_pages(
    hub: &Hub,
    store: &Arc<dyn Store>,
    recorder: &Recorder,
    mut after: i64,
    upto: i64,
    shutdown: &CancellationToken,
) -> bool {
    while after < upto {
        match store.events_after(after, upto, PAGE).await {
            Ok(events) if events.is_empty() => break,
            Ok(events) => {
                for event in events {
                    after = event.seq;
                    deliver(hub, recorder, Arc::new(event)).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "cannot read the log to refill the feed; retrying");
                if pause(shutdown).await {
                    return false;
                }
            }
        }
    }
    true
}

/// Waits a moment before a retry; true when shutdown came first.
async fn pause(shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(500)) => false,
        _ = shutdown.cancelled() => true,
    }
}

//! The feed: this node's consumer of the bus. It hands each event to the hub in log order,
//! refilling from the store any positions it missed (a lagging subscription, a gap), and passes
//! the resulting delivery marks to the recorder.
//!
//! It also watches the newest logged position the database announces (PostgreSQL tells every
//! node): when the bus has not brought that far within `fallback_after`, the feed reads the
//! missing events from the database itself. A broker outage, a slow relay or a dead leader then
//! delays live delivery by that long instead of stopping it.

use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::report::Chain;
use crate::stream::Hub;
use herald_bus::Subscription;
use herald_domain::Event;
use herald_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const PAGE: u32 = 1_000;

/// What the feed hands events to, and where it refills gaps from.
pub struct Feed {
    pub hub: Arc<Hub>,
    pub store: Arc<dyn Store>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// How long the bus may lag the database's announced head before the feed reads the log.
    pub fallback_after: Duration,
}

/// Reading the log when the bus is late.
struct Fallback {
    log_head: watch::Receiver<i64>,
    after: Duration,
    metrics: Arc<Metrics>,
}

/// What woke the feed.
enum Wake {
    Bus(Result<Arc<Event>, RecvError>),
    /// The database announced a newer logged position.
    Logged,
    /// The bus has not caught up with the announced position in time.
    Overdue,
}

impl Feed {
    pub async fn run(self, sub: Subscription, shutdown: CancellationToken) {
        let log_head = self.store.signals().log_head.subscribe();
        let fallback = Fallback { log_head, after: self.fallback_after, metrics: self.metrics };
        run(self.hub, self.store, sub, fallback, self.recorder, shutdown).await
    }
}

async fn run(
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    mut sub: Subscription,
    fallback: Fallback,
    recorder: Recorder,
    shutdown: CancellationToken,
) {
    let Fallback { mut log_head, after: fallback_after, metrics } = fallback;
    let mut overdue_at: Option<Instant> = None;
    loop {
        let wake = tokio::select! {
            r = sub.recv() => Wake::Bus(r),
            Ok(()) = log_head.changed() => Wake::Logged,
            _ = tokio::time::sleep_until(overdue_at.unwrap_or_else(Instant::now)), if overdue_at.is_some() => Wake::Overdue,
            _ = shutdown.cancelled() => return,
        };
        let next = match wake {
            Wake::Bus(next) => next,
            Wake::Logged => {
                if *log_head.borrow() > hub.head() && overdue_at.is_none() {
                    overdue_at = Some(Instant::now() + fallback_after);
                }
                continue;
            }
            Wake::Overdue => {
                overdue_at = None;
                let target = *log_head.borrow();
                if target > hub.head() {
                    tracing::debug!(after = hub.head(), upto = target, "the bus is late; reading the log");
                    Metrics::add(&metrics.events_read_from_log_total, (target - hub.head()) as u64);
                    if !refill(&hub, &store, &recorder, hub.head(), target, &shutdown).await {
                        return;
                    }
                }
                continue;
            }
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

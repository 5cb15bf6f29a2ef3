//! The scheduler (on the leader): activates broadcasts at `scheduledAt` and expires them at
//! `expiresAt`. It sleeps until the next due time (never polls for nothing) and wakes early when a
//! backend signals that a sooner time may exist. Overdue work after a restart runs at once.

use crate::report::Chain;
use async_trait::async_trait;
use herald_domain::{Clock, Timestamp};
use herald_store::{DueWork, Signals, Store, StoreResult};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Longest sleep with nothing due; a new schedule wakes the loop earlier.
const IDLE: Duration = Duration::from_secs(3600);

/// What the scheduler needs of the store.
#[async_trait]
pub trait Schedule: Send + Sync + 'static {
    fn signals(&self) -> &Signals;
    async fn next_due(&self) -> StoreResult<Option<Timestamp>>;
    async fn run_due(&self, now: Timestamp) -> StoreResult<DueWork>;
}

#[async_trait]
impl Schedule for Arc<dyn Store> {
    fn signals(&self) -> &Signals {
        Store::signals(self.as_ref())
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        Store::next_due(self.as_ref()).await
    }

    async fn run_due(&self, now: Timestamp) -> StoreResult<DueWork> {
        Store::run_due(self.as_ref(), now).await
    }
}

pub async fn run(store: impl Schedule, clock: Arc<dyn Clock>, shutdown: CancellationToken) {
    loop {
        let wait = pass(&store, clock.now()).instrument(tracing::debug_span!("scheduler pass")).await;
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = store.signals().schedule.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Runs what is due at `now`; how long to sleep before the next pass (zero: look again at once).
async fn pass(store: &impl Schedule, now: Timestamp) -> Duration {
    match store.next_due().await {
        Ok(Some(due)) if due <= now => match store.run_due(now).await {
            Ok(work) if work.activated + work.expired > 0 => {
                tracing::info!(activated = work.activated, expired = work.expired, "scheduler ran due work");
                Duration::ZERO
            }
            // Due but nothing changed (a concurrent cancel, say): look again shortly.
            Ok(_) => Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "scheduler could not run due work; retrying");
                Duration::from_millis(500)
            }
        },
        Ok(Some(due)) => Duration::from_millis((due.millis() - now.millis()).max(1) as u64).min(IDLE),
        Ok(None) => IDLE,
        Err(e) => {
            tracing::warn!(error = %Chain(&e), "scheduler could not read due times; retrying");
            Duration::from_millis(500)
        }
    }
}

#[cfg(test)]
mod tests;

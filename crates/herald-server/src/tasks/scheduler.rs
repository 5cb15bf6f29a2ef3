//! The scheduler: activates broadcasts at `scheduledAt` and expires them at `expiresAt`. It sleeps
//! until the next due time (never polls for nothing) and wakes early when a backend signals that
//! a sooner time may exist. Overdue work after a restart runs at once.

use herald_domain::Timestamp;
use herald_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest sleep with nothing due; a new schedule wakes the loop earlier.
const IDLE: Duration = Duration::from_secs(3600);

pub async fn run(store: Arc<dyn Store>, shutdown: CancellationToken) {
    loop {
        let now = Timestamp::now();
        let wait = match store.next_due().await {
            Ok(Some(due)) if due <= now => match store.run_due(now).await {
                Ok(work) if work.activated + work.expired > 0 => {
                    tracing::info!(
                        activated = work.activated,
                        expired = work.expired,
                        "scheduler ran due work"
                    );
                    continue;
                }
                // Due but nothing changed (a concurrent cancel, say): look again shortly.
                Ok(_) => Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %crate::report::Chain(&e), "scheduler could not run due work; retrying");
                    Duration::from_millis(500)
                }
            },
            Ok(Some(due)) => Duration::from_millis((due.millis() - now.millis()).max(1) as u64).min(IDLE),
            Ok(None) => IDLE,
            Err(e) => {
                tracing::warn!(error = %crate::report::Chain(&e), "scheduler could not read due times; retrying");
                Duration::from_millis(500)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = store.signals().schedule.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

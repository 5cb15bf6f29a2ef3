//! How many frames wait on this node's stream queues for their writers. Deliveries come first:
//! bookkeeping that can lag (the delivery recorder) waits until the writers have taken what was
//! queued, so on one busy core a burst of socket writes never queues behind a database write.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct Backlog {
    frames: AtomicI64,
    drained: Notify,
}

impl Backlog {
    /// `n` frames were queued on streams.
    pub fn queued(&self, n: usize) {
        if n > 0 {
            self.frames.fetch_add(n as i64, Ordering::Relaxed);
        }
    }

    /// A stream's writer took `n` frames (or the stream ended with them still queued).
    pub fn taken(&self, n: usize) {
        if n > 0 && self.frames.fetch_sub(n as i64, Ordering::AcqRel) <= n as i64 {
            self.drained.notify_waiters();
        }
    }

    /// Frames queued and not yet taken.
    pub fn frames(&self) -> i64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Waits until every queued frame was taken, or until `deadline`; returns whether it drained.
    pub async fn drained(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.frames() <= 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.frames() <= 0;
            }
        }
    }
}

/// Longest a recorder batch waits for the stream writers: records stay well within the 2 s a
/// delivery record may lag (SPEC section 8) even under constant load.
pub const MAX_DEFER: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn waits_for_the_writers_to_take_every_frame() {
        let backlog = Arc::new(Backlog::default());
        backlog.queued(3);
        let waiting = {
            let backlog = backlog.clone();
            tokio::spawn(async move { backlog.drained(Instant::now() + Duration::from_secs(30)).await })
        };
        backlog.taken(2);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one frame is still queued");
        backlog.taken(1);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline() {
        let backlog = Backlog::default();
        backlog.queued(1);
        assert!(!backlog.drained(Instant::now() + MAX_DEFER).await);
        assert!(Backlog::default().drained(Instant::now()).await, "nothing queued: no wait");
    }
}

//! The delivery recorder: collects "sent to user" marks from the hub and the catch-up path and
//! writes them in batches, off the hot path. Counts in stats come from these rows.

use crate::backlog::{Backlog, MAX_DEFER};
use crate::metrics::Metrics;
use crate::report::Chain;
use herald_store::{DeliveryMark, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Marks collected before a write at most.
const MAX_BATCH: usize = 50_000;

/// Marks written in one transaction at most. SQLite has one writer: a publish waits for the
/// recorder's transaction to end, so a transaction is kept to a few milliseconds (20 000 marks in
/// one made a create request wait 45 ms at 100 broadcasts/s to 2 000 streams).
const MARKS_PER_TRANSACTION: usize = 2_000;

#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Vec<DeliveryMark>>,
    pending: Arc<AtomicU64>,
}

impl Recorder {
    /// A recorder whose queue holds at most `capacity` batches. Senders wait when it is full:
    /// a database that cannot keep up slows dispatch (backpressure) rather than growing memory
    /// without bound; it never closes or blocks a stream's queue.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Vec<DeliveryMark>>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, pending: Arc::default() }, rx)
    }

    pub async fn record(&self, marks: Vec<DeliveryMark>) {
        let n = marks.len() as u64;
        if n == 0 {
            return;
        }
        self.pending.fetch_add(n, Ordering::Relaxed);
        if self.tx.send(marks).await.is_err() {
            self.pending.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Marks accepted but not yet committed.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Writes the marks it is given in batches; a batch waits (at most [`MAX_DEFER`]) while the
    /// stream writers have frames queued, so deliveries never wait behind their records.
    pub async fn run(
        &self,
        mut rx: mpsc::Receiver<Vec<DeliveryMark>>,
        store: Arc<dyn Store>,
        flush_interval: Duration,
        metrics: Arc<Metrics>,
        backlog: Arc<Backlog>,
        shutdown: CancellationToken,
    ) {
        let mut buf: Vec<DeliveryMark> = Vec::new();
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                _ = shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            buf.extend(first);
            let deadline = Instant::now() + flush_interval;
            while buf.len() < MAX_BATCH {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(more) => buf.extend(more),
                        None => break,
                    },
                    _ = sleep_until(deadline) => break,
                    _ = shutdown.cancelled() => break,
                }
            }
            // Deliveries first: wait while the stream writers have frames to take, still taking
            // marks meanwhile (so neither the feed nor a catch-up ever waits on a full channel).
            let defer_until = Instant::now() + MAX_DEFER;
            while !shutdown.is_cancelled() {
                tokio::select! {
                    biased;
                    _ = backlog.drained(defer_until) => break,
                    m = rx.recv() => match m {
                        Some(more) => buf.extend(more),
                        None => break,
                    },
                    _ = shutdown.cancelled() => break,
                }
            }
            self.write(&store, &mut buf, &metrics, &shutdown).await;
        }
        while let Ok(more) = rx.try_recv() {
            buf.extend(more);
        }
        self.write(&store, &mut buf, &metrics, &shutdown).await;
    }

    /// Writes `buf` (retrying while the database is down, unless shutting down) and clears it.
    async fn write(
        &self,
        store: &Arc<dyn Store>,
        buf: &mut Vec<DeliveryMark>,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) {
        if buf.is_empty() {
            return;
        }
        let taken = buf.len() as u64;
        let marks = dedupe(std::mem::take(buf));
        let span = tracing::debug_span!("recorder batch", marks = taken, rows = marks.len());
        self.write_chunks(store, &marks, metrics, shutdown).instrument(span).await;
        self.pending.fetch_sub(taken, Ordering::Relaxed);
    }

    async fn write_chunks(
        &self,
        store: &Arc<dyn Store>,
        marks: &[DeliveryMark],
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) {
        for chunk in marks.chunks(MARKS_PER_TRANSACTION) {
            let mut attempt = 0u32;
            loop {
                match store.record_deliveries(chunk).await {
                    Ok(()) => {
                        Metrics::add(&metrics.delivery_records_written_total, chunk.len() as u64);
                        break;
                    }
                    Err(e) => {
                        attempt += 1;
                        tracing::warn!(error = %Chain(&e), attempt, rows = chunk.len(), "writing delivery records failed");
                        if shutdown.is_cancelled() && attempt >= 3 {
                            tracing::error!(rows = chunk.len(), "giving up on delivery records at shutdown");
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500).saturating_mul(attempt.min(10))).await;
                    }
                }
            }
        }
    }
}

/// One mark per (broadcast, user), sorted by (broadcast, user): the earliest time, read if any
/// mark says read. Sorted marks are appends to the stores' primary keys.
fn dedupe(mut marks: Vec<DeliveryMark>) -> Vec<DeliveryMark> {
    marks
        .sort_unstable_by(|a, b| (a.broadcast_id, &a.user_id, a.at).cmp(&(b.broadcast_id, &b.user_id, b.at)));
    let mut out: Vec<DeliveryMark> = Vec::with_capacity(marks.len());
    for m in marks {
        match out.last_mut() {
            Some(last) if last.broadcast_id == m.broadcast_id && last.user_id == m.user_id => {
                last.read |= m.read
            }
            _ => out.push(m),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::Timestamp;

    fn mark(b: i64, u: &str, at: i64, read: bool) -> DeliveryMark {
        DeliveryMark { broadcast_id: b, user_id: u.into(), at: Timestamp::from_millis(at), read }
    }

    #[test]
    fn dedupe_keeps_the_first_delivery_per_user_and_broadcast() {
        let out = dedupe(vec![
            mark(2, "a", 5, true),
            mark(1, "b", 7, false),
            mark(1, "a", 20, true),
            mark(1, "a", 10, false),
        ]);
        assert_eq!(out, vec![mark(1, "a", 10, true), mark(1, "b", 7, false), mark(2, "a", 5, true)]);
    }
}

//! The delivery recorder: collects "sent to user" marks from the hub and the catch-up path and
//! writes them in batches, off the hot path. Counts in stats come from these rows.

use crate::backlog::{Backlog, MAX_DEFER};
use crate::metrics::Metrics;
use crate::report::Chain;
use herald_store::{DeliveryMark, Store};
use std::future::Future;
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

    /// Writes the marks it is given in batches; a batch waits (at most [`MAX_DEFER`] in all)
    /// while the stream writers have frames queued, before its first transaction and between
    /// transactions, so deliveries never wait behind their records.
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
            self.write(&store, &mut buf, &metrics, &shutdown, Some((&backlog, defer_until))).await;
        }
        while let Ok(more) = rx.try_recv() {
            buf.extend(more);
        }
        self.write(&store, &mut buf, &metrics, &shutdown, None).await;
    }

    /// Writes `buf` (retrying while the database is down, unless shutting down) and clears it.
    /// With `defer`, each transaction after the first waits (until the deadline at most) while
    /// the stream writers have frames queued: a broadcast dispatched meanwhile is written to its
    /// streams before the rest of the batch.
    async fn write(
        &self,
        store: &Arc<dyn Store>,
        buf: &mut Vec<DeliveryMark>,
        metrics: &Metrics,
        shutdown: &CancellationToken,
        defer: Option<(&Backlog, Instant)>,
    ) {
        if buf.is_empty() {
            return;
        }
        let taken = buf.len() as u64;
        let marks = dedupe(std::mem::take(buf));
        let span = tracing::debug_span!("recorder batch", marks = taken, rows = marks.len());
        let between = || async move {
            if let Some((backlog, until)) = defer {
                backlog.drained(until).await;
            }
        };
        write_chunks(&marks, between, |chunk| self.write_chunk(store, chunk, metrics, shutdown))
            .instrument(span)
            .await;
        self.pending.fetch_sub(taken, Ordering::Relaxed);
    }

    /// Writes one transaction's marks, retrying while the database is down.
    async fn write_chunk(
        &self,
        store: &Arc<dyn Store>,
        chunk: &[DeliveryMark],
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) {
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

/// Writes `marks` a transaction's worth at a time, awaiting `between` before every transaction
/// but the first.
async fn write_chunks<'m, B, BF, W, WF>(marks: &'m [DeliveryMark], between: B, mut write: W)
where
    B: Fn() -> BF,
    BF: Future,
    W: FnMut(&'m [DeliveryMark]) -> WF,
    WF: Future<Output = ()>,
{
    for (i, chunk) in marks.chunks(MARKS_PER_TRANSACTION).enumerate() {
        if i > 0 {
            between().await;
        }
        write(chunk).await;
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
    use std::cell::RefCell;
    use std::pin::pin;
    use std::task::{Context, Waker};

    fn mark(b: i64, u: &str, at: i64, read: bool) -> DeliveryMark {
        DeliveryMark { broadcast_id: b, user_id: u.into(), at: Timestamp::from_millis(at), read }
    }

    fn marks(n: usize) -> Vec<DeliveryMark> {
        (0..n).map(|i| mark(1, &format!("u{i:05}"), 0, false)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_fan_out_that_starts_during_a_batch_goes_before_the_rest_of_it() {
        let backlog = Backlog::default();
        let marks = marks(MARKS_PER_TRANSACTION * 2 + 1);
        let written = RefCell::new(Vec::new());
        let until = Instant::now() + MAX_DEFER;
        let mut batch = pin!(write_chunks(
            &marks,
            || backlog.drained(until),
            |chunk| {
                written.borrow_mut().push(chunk.len());
                // A broadcast is dispatched while the first transaction is written.
                if written.borrow().len() == 1 {
                    backlog.queued(1);
                }
                async {}
            }
        ));
        assert!(batch.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(*written.borrow(), [MARKS_PER_TRANSACTION], "the rest waits for the stream writers");
        backlog.taken(1);
        batch.await;
        assert_eq!(*written.borrow(), [MARKS_PER_TRANSACTION, MARKS_PER_TRANSACTION, 1]);
        assert_eq!(Instant::now(), until - MAX_DEFER, "no waiting once the frames were taken");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_the_writers_no_longer_than_its_deadline() {
        let backlog = Backlog::default();
        backlog.queued(1);
        let marks = marks(MARKS_PER_TRANSACTION * 3);
        let written = RefCell::new(0);
        let start = Instant::now();
        let until = start + MAX_DEFER;
        write_chunks(
            &marks,
            || backlog.drained(until),
            |_| {
                *written.borrow_mut() += 1;
                async {}
            },
        )
        .await;
        assert_eq!(*written.borrow(), 3, "every transaction written");
        assert_eq!(Instant::now() - start, MAX_DEFER, "one deadline for the whole batch");
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

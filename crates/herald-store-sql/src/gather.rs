//! Group commit for calls that arrive together. Every stream connect looks its user up in the
//! directory (and adds it the first time); one round trip each made a ramp of new users cost the
//! server several times more CPU than the streams themselves, mostly handing statements to the
//! database's thread and back. Callers queue their key; whoever holds the turn answers everything
//! queued so far with one call, so a burst of connects costs a handful of statements. In a burst,
//! the turn first waits while callers keep coming ([`LINGER`]).

use herald_store::{StoreError, StoreResult};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Keys answered by one call at most.
const MAX_BATCH: usize = 1_000;

/// In a burst, while callers keep coming, a call waits for them until this long after the call
/// before it began.
/// Without it the next call began as soon as the one before ended: batches were as small as the
/// round trip was short, and a ramp of 15 000 new users' streams made about 900 of them, each a
/// few hand-offs to the database's thread and back (the directory was 40 % of the ramp's CPU).
const LINGER: Duration = Duration::from_millis(20);
/// How often a waiting call looks whether callers still come: it is made after a step in which
/// none did. Only a burst waits: a call [`LINGER`] or more after the one before began goes at
/// once, and so does one for a single caller right after a call for a single caller (as when a
/// client connects its users one after another).
const STEP: Duration = Duration::from_millis(1);

type Waiter<K, V> = (K, oneshot::Sender<StoreResult<V>>);

pub(crate) struct Gather<K, V> {
    queue: Mutex<Vec<Waiter<K, V>>>,
    /// When the last call began, and how many keys it answered.
    turn: tokio::sync::Mutex<Option<(Instant, usize)>>,
}

impl<K, V> Default for Gather<K, V> {
    fn default() -> Self {
        Self { queue: Mutex::default(), turn: tokio::sync::Mutex::default() }
    }
}

impl<K: Clone, V> Gather<K, V> {
    /// `run(keys)` answers each key, in order, with one result per key. A caller whose batch
    /// was abandoned (the caller running it went away) runs its own key alone.
    pub(crate) async fn call<F, Fut>(&self, key: K, run: F) -> StoreResult<V>
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = StoreResult<Vec<V>>>,
    {
        let (tx, mut rx) = oneshot::channel();
        self.lock_queue().push((key.clone(), tx));
        loop {
            // Answered by someone else's turn, or take a turn: never wait for a turn once answered.
            let mut turn = tokio::select! {
                biased;
                answer = &mut rx => return match answer {
                    Ok(answer) => answer,
                    Err(_) => Self::alone(key, &run).await,
                },
                turn = self.turn.lock() => turn,
            };
            self.linger(*turn).await;
            let batch = {
                let mut queue = self.lock_queue();
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect::<Vec<_>>()
            };
            if !batch.is_empty() {
                *turn = Some((Instant::now(), batch.len()));
                let keys = batch.iter().map(|(k, _)| k.clone()).collect();
                let answers = run(keys).await;
                answer(batch, answers);
            }
            drop(turn);
            // Answered now, or still queued behind a full batch: then take another turn.
        }
    }

    /// In a burst (the `last` call, or the queue, holds more than one key), waits while callers
    /// keep coming, until [`LINGER`] after the last call began or a full batch is queued.
    async fn linger(&self, last: Option<(Instant, usize)>) {
        let Some((began, answered)) = last else { return };
        let until = began + LINGER;
        let mut queued = self.lock_queue().len();
        if answered <= 1 && queued <= 1 {
            return;
        }
        while queued < MAX_BATCH && Instant::now() < until {
            tokio::time::sleep(STEP.min(until.saturating_duration_since(Instant::now()))).await;
            let now = self.lock_queue().len();
            if now == queued {
                return;
            }
            queued = now;
        }
    }

    /// The batch this key was in was abandoned (the caller running it went away).
    async fn alone<F, Fut>(key: K, run: &F) -> StoreResult<V>
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = StoreResult<Vec<V>>>,
    {
        run(vec![key]).await?.pop().ok_or_else(|| StoreError::unavailable(Abandoned))
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Waiter<K, V>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn answer<K, V>(batch: Vec<Waiter<K, V>>, answers: StoreResult<Vec<V>>) {
    match answers {
        Ok(values) if values.len() == batch.len() => {
            for ((_, waiter), value) in batch.into_iter().zip(values) {
                let _ = waiter.send(Ok(value));
            }
        }
        Ok(_) => {
            for (_, waiter) in batch {
                let _ = waiter.send(Err(StoreError::unavailable(Abandoned)));
            }
        }
        Err(e) => {
            for (_, waiter) in batch {
                let _ = waiter.send(Err(e.clone()));
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a batched lookup gave no answer")]
struct Abandoned;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::task::JoinHandle;

    #[tokio::test]
    async fn concurrent_callers_share_calls_and_each_gets_its_own_answer() {
        let gather = Arc::new(Gather::<u32, u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        // More callers than one batch holds.
        let tasks: Vec<_> = (0..2_500u32)
            .map(|k| {
                let (gather, calls) = (gather.clone(), calls.clone());
                tokio::spawn(async move {
                    gather
                        .call(k, |keys| {
                            calls.fetch_add(1, Ordering::Relaxed);
                            async move {
                                tokio::task::yield_now().await;
                                Ok(keys.iter().map(|k| k * 10).collect())
                            }
                        })
                        .await
                })
            })
            .collect();
        for (k, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), k as u32 * 10);
        }
        assert!(calls.load(Ordering::Relaxed) < 2_500, "some callers shared a call");
    }

    /// Lets spawned callers run until they wait (the clock is paused).
    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    /// A gather whose calls answer `key * 10` and are counted; the first call it makes waits for
    /// the returned sender (like a round trip in progress), so callers can queue behind it. That
    /// call has begun when this returns.
    async fn held_gather() -> (Arc<Gather<u32, u32>>, Arc<AtomicUsize>, oneshot::Sender<()>) {
        let (release, held) = oneshot::channel::<()>();
        let held = Arc::new(Mutex::new(Some(held)));
        let gather = Arc::new(Gather::<u32, u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let caller = (gather.clone(), calls.clone());
        tokio::spawn(async move {
            let run = |keys: Vec<u32>| {
                caller.1.fetch_add(1, Ordering::Relaxed);
                let held = held.lock().unwrap().take();
                async move {
                    if let Some(held) = held {
                        let _ = held.await;
                    }
                    Ok(keys.iter().map(|k| k * 10).collect())
                }
            };
            caller.0.call(0, run).await.unwrap()
        });
        settle().await;
        (gather, calls, release)
    }

    fn call(gather: &Arc<Gather<u32, u32>>, calls: &Arc<AtomicUsize>, k: u32) -> JoinHandle<u32> {
        let (gather, calls) = (gather.clone(), calls.clone());
        tokio::spawn(async move {
            let run = |keys: Vec<u32>| {
                calls.fetch_add(1, Ordering::Relaxed);
                async move { Ok(keys.iter().map(|k| k * 10).collect()) }
            };
            gather.call(k, run).await.unwrap()
        })
    }

    /// A new caller `k`, queued, and then the clock a step on.
    async fn caller_then_step(
        gather: &Arc<Gather<u32, u32>>,
        calls: &Arc<AtomicUsize>,
        k: u32,
    ) -> JoinHandle<u32> {
        let task = call(gather, calls, k);
        settle().await;
        tokio::time::advance(STEP).await;
        settle().await;
        task
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_caller_goes_at_once() {
        let gather = Arc::new(Gather::<u32, u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        for k in 1..4 {
            assert_eq!(call(&gather, &calls, k).await.unwrap(), k * 10);
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "one after another, each alone: none waited");
    }

    #[tokio::test(start_paused = true)]
    async fn callers_that_keep_coming_share_one_call() {
        let (gather, calls, release) = held_gather().await;
        // Two callers queue behind a call in progress; once it is over, a new one every step.
        let mut burst = vec![call(&gather, &calls, 1), call(&gather, &calls, 2)];
        settle().await;
        let start = Instant::now();
        release.send(()).unwrap();
        settle().await;
        for k in 3..7 {
            burst.push(caller_then_step(&gather, &calls, k).await);
        }
        for (k, task) in (1..).zip(burst) {
            assert_eq!(task.await.unwrap(), k * 10);
        }
        assert_eq!(calls.load(Ordering::Relaxed), 2, "the six callers shared one call");
        assert_eq!(start.elapsed(), STEP * 5, "made once a step went by with no one new");
        let alone = Instant::now();
        assert_eq!(call(&gather, &calls, 9).await.unwrap(), 90);
        assert_eq!(alone.elapsed(), STEP, "alone right after a burst: one step, in case it goes on");
        let alone = Instant::now();
        assert_eq!(call(&gather, &calls, 10).await.unwrap(), 100);
        assert_eq!(alone.elapsed(), Duration::ZERO, "alone right after a lone caller: at once");
    }

    #[tokio::test(start_paused = true)]
    async fn callers_that_never_stop_coming_are_answered_within_the_linger() {
        let (gather, calls, release) = held_gather().await;
        // The held call began now, and its round trip takes 5 ms.
        let start = Instant::now();
        let mut burst = vec![call(&gather, &calls, 1), call(&gather, &calls, 2)];
        settle().await;
        tokio::time::advance(STEP * 5).await;
        release.send(()).unwrap();
        settle().await;
        let mut k = 3;
        while !burst[0].is_finished() {
            assert!(start.elapsed() < LINGER, "still waiting after {:?}", start.elapsed());
            burst.push(caller_then_step(&gather, &calls, k).await);
            k += 1;
        }
        assert_eq!(start.elapsed(), LINGER, "answered LINGER after the call before began");
        for (k, task) in (1..).zip(burst) {
            assert_eq!(task.await.unwrap(), k * 10);
        }
        assert_eq!(calls.load(Ordering::Relaxed), 2, "all of them in one call");
        // That call answered many; after a quiet spell a lone caller goes at once all the same.
        tokio::time::advance(LINGER).await;
        let quiet = Instant::now();
        assert_eq!(call(&gather, &calls, 99).await.unwrap(), 990);
        assert_eq!(quiet.elapsed(), Duration::ZERO, "after a quiet spell: at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_without_waiting_for_more() {
        let (gather, calls, release) = held_gather().await;
        let tasks: Vec<_> = (1..=MAX_BATCH as u32).map(|k| call(&gather, &calls, k)).collect();
        while gather.lock_queue().len() < MAX_BATCH {
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        release.send(()).unwrap();
        for (k, task) in (1..).zip(tasks) {
            assert_eq!(task.await.unwrap(), k * 10);
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "a full batch queued: nobody waited for more");
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_caller_in_it() {
        let gather = Gather::<u32, u32>::default();
        let failed =
            gather.call(1, |_| async { Err::<Vec<u32>, _>(StoreError::unavailable(Abandoned)) }).await;
        assert!(failed.is_err());
        assert_eq!(gather.call(2, |keys| async move { Ok(keys) }).await.unwrap(), 2);
    }
}

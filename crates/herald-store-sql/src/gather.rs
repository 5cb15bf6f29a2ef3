//! Group commit for calls that arrive together. Every stream connect looks its user up in the
//! directory (and adds it the first time); one round trip each made a ramp of new users cost the
//! server several times more CPU than the streams themselves, mostly handing statements to the
//! database's thread and back. Callers queue their key; whoever holds the turn answers everything
//! queued so far with one call, so a burst of connects costs a handful of statements.

use herald_store::{StoreError, StoreResult};
use std::future::Future;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Keys answered by one call at most.
const MAX_BATCH: usize = 1_000;

type Waiter<K, V> = (K, oneshot::Sender<StoreResult<V>>);

pub(crate) struct Gather<K, V> {
    queue: Mutex<Vec<Waiter<K, V>>>,
    turn: tokio::sync::Mutex<()>,
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
            let turn = tokio::select! {
                biased;
                answer = &mut rx => return match answer {
                    Ok(answer) => answer,
                    Err(_) => Self::alone(key, &run).await,
                },
                turn = self.turn.lock() => turn,
            };
            let batch = {
                let mut queue = self.lock_queue();
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect::<Vec<_>>()
            };
            if !batch.is_empty() {
                let keys = batch.iter().map(|(k, _)| k.clone()).collect();
                let answers = run(keys).await;
                answer(batch, answers);
            }
            drop(turn);
            // Answered now, or still queued behind a full batch: then take another turn.
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

    #[tokio::test]
    async fn a_failed_call_fails_every_caller_in_it() {
        let gather = Gather::<u32, u32>::default();
        let failed =
            gather.call(1, |_| async { Err::<Vec<u32>, _>(StoreError::unavailable(Abandoned)) }).await;
        assert!(failed.is_err());
        assert_eq!(gather.call(2, |keys| async move { Ok(keys) }).await.unwrap(), 2);
    }
}

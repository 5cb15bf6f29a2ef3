//! A stream's queue: one sender (the hub), one receiver (the stream's writer), a bound. It costs
//! about a hundred bytes until a frame waits in it; tokio's channel took one and a half KiB per
//! stream (a block of 32 slots and a cache-padded header), a third of an idle stream's memory.
//!
//! It keeps the node's [`Backlog`] up to date: every item queued, taken, or still queued when the
//! receiver goes away (however the stream ended).

use crate::backlog::Backlog;
use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

struct State<T> {
    items: VecDeque<T>,
    sender_gone: bool,
    receiver_gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    receiver: AtomicWaker,
    backlog: Arc<Backlog>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Sender<T>(Arc<Shared<T>>);
pub struct Receiver<T>(Arc<Shared<T>>);

/// Why `try_recv` returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Empty {
    /// Nothing queued yet.
    Waiting,
    /// Nothing queued, and the sender is gone.
    Ended,
}

pub fn channel<T>(capacity: usize, backlog: Arc<Backlog>) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { items: VecDeque::new(), sender_gone: false, receiver_gone: false }),
        capacity: capacity.max(1),
        receiver: AtomicWaker::new(),
        backlog,
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `item` unless the queue is full or the receiver is gone (then gives it back).
    pub fn try_send(&self, item: T) -> Result<(), T> {
        {
            let mut state = self.0.lock();
            if state.receiver_gone || state.items.len() >= self.0.capacity {
                return Err(item);
            }
            state.items.push_back(item);
        }
        self.0.backlog.queued(1);
        self.0.receiver.wake();
        Ok(())
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.0.lock().receiver_gone
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.receiver.wake();
    }
}

impl<T> Receiver<T> {
    pub fn try_recv(&mut self) -> Result<T, Empty> {
        let mut state = self.0.lock();
        match state.items.pop_front() {
            Some(item) => {
                drop(state);
                self.0.backlog.taken(1);
                Ok(item)
            }
            None if state.sender_gone => Err(Empty::Ended),
            None => Err(Empty::Waiting),
        }
    }

    /// The next item; `None` once the sender is gone and everything queued was taken.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.try_recv() {
            Ok(item) => return Poll::Ready(Some(item)),
            Err(Empty::Ended) => return Poll::Ready(None),
            Err(Empty::Waiting) => {}
        }
        self.0.receiver.register(cx.waker());
        // Something may have been queued between the check and the registration.
        match self.try_recv() {
            Ok(item) => Poll::Ready(Some(item)),
            Err(Empty::Ended) => Poll::Ready(None),
            Err(Empty::Waiting) => Poll::Pending,
        }
    }
}

impl<T> Drop for Receiver<T> {
    /// What is still queued will never be taken: it no longer counts as waiting.
    fn drop(&mut self) {
        let left = {
            let mut state = self.0.lock();
            state.receiver_gone = true;
            std::mem::take(&mut state.items)
        };
        self.0.backlog.taken(left.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker;

    #[test]
    fn keeps_order_and_bound_and_ends_after_the_sender() {
        let (tx, mut rx) = channel(2, Arc::default());
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(3), "full");
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(tx.try_send(3), Ok(()));
        drop(tx);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(3)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None), "what was queued went out first");
    }

    #[test]
    fn a_gone_receiver_refuses_items() {
        let (tx, rx) = channel(4, Arc::default());
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.try_send(1), Err(1));
    }

    #[test]
    fn the_backlog_counts_down_as_items_are_taken_or_dropped() {
        let backlog = Arc::new(Backlog::default());
        let (tx, mut rx) = channel(8, backlog.clone());
        for i in 0..3 {
            tx.try_send(i).unwrap();
        }
        assert_eq!(rx.try_recv(), Ok(0));
        assert_eq!(backlog.frames(), 2);
        drop(rx);
        assert_eq!(backlog.frames(), 0, "what was still queued no longer waits");
        assert_eq!(tx.try_send(9), Err(9));
    }

    #[tokio::test]
    async fn wakes_a_waiting_receiver() {
        let (tx, mut rx) = channel(4, Arc::default());
        let waiting = tokio::spawn(async move { std::future::poll_fn(|cx| rx.poll_recv(cx)).await });
        tokio::task::yield_now().await;
        tx.try_send(7).unwrap();
        assert_eq!(waiting.await.unwrap(), Some(7));
    }
}

//! A stream's queue: one sender (the hub), one receiver (the stream's task), a bound. It costs
//! about 150 bytes until two frames wait in it; tokio's channel took one and a half KiB per
//! stream (a block of 32 slots and a cache-padded header), a third of an idle stream's memory.
//!
//! While the stream's task waits with everything before written, the queue is *direct*: a frame
//! queued then lists the stream with its [`Writer`], which writes it to the socket itself (see
//! `net/runtime.rs`); whatever the writer cannot write at once goes back to the task. Only one of
//! them ever writes: the writer writes under the queue's lock and only while direct, and the task
//! leaves direct, under the same lock, before it takes anything to write.
//!
//! It keeps the node's [`Backlog`] up to date: every item queued, taken, or still queued when the
//! receiver goes away (however the stream ended).

use crate::backlog::Backlog;
use crate::net::runtime::{Attach, DirectStream, Writer};
use bytes::Bytes;
use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// What a stream's queue carries: a frame to write, or the instruction to end after the frames
/// before it (used by disconnect, Force Logoff and shutdown so the last frames still go out).
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    Frame(Bytes),
    Close,
}

struct Sink {
    socket: Arc<TcpStream>,
    writer: Arc<Writer>,
}

/// The queued items in order. The first lives inline, so the writer's walk over thousands of
/// streams, each with one frame, reads no second allocation per stream (a cache miss each: a
/// third of the time `perf` gave the writer's `flush`, and a quarter of the hub's `try_send`).
#[derive(Default)]
struct Items {
    front: Option<Out>,
    rest: VecDeque<Out>,
}

impl Items {
    fn len(&self) -> usize {
        usize::from(self.front.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        debug_assert!(self.front.is_some() || self.rest.is_empty(), "the front is filled first");
        self.front.is_none()
    }

    fn push_back(&mut self, item: Out) {
        if self.front.is_none() {
            self.front = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    fn pop_front(&mut self) -> Option<Out> {
        let front = self.front.take();
        self.front = self.rest.pop_front();
        front
    }

    fn front(&self) -> Option<&Out> {
        self.front.as_ref()
    }

    fn front_mut(&mut self) -> Option<&mut Out> {
        self.front.as_mut()
    }

    fn iter(&self) -> impl Iterator<Item = &Out> {
        self.front.iter().chain(&self.rest)
    }
}

struct State {
    items: Items,
    sender_gone: bool,
    receiver_gone: bool,
    /// Where the writer writes, once the response head is on a plain socket.
    sink: Option<Sink>,
    /// The task waits with nothing left to write: new frames are the writer's.
    direct: bool,
    /// On the writer's list.
    listed: bool,
    /// The front frame is the rest of one the writer wrote part of.
    cut: bool,
}

struct Shared {
    state: Mutex<State>,
    capacity: usize,
    receiver: AtomicWaker,
    backlog: Arc<Backlog>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Sender(Arc<Shared>);
pub struct Receiver(Arc<Shared>);

/// Why `try_recv` returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Empty {
    /// Nothing queued yet.
    Waiting,
    /// Nothing queued, and the sender is gone.
    Ended,
}

pub fn channel(capacity: usize, backlog: Arc<Backlog>) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: Items::default(),
            sender_gone: false,
            receiver_gone: false,
            sink: None,
            direct: false,
            listed: false,
            cut: false,
        }),
        capacity: capacity.max(1),
        receiver: AtomicWaker::new(),
        backlog,
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl Sender {
    /// Queues `item` unless the queue is full or the receiver is gone (then gives it back).
    pub fn try_send(&self, item: Out) -> Result<(), Out> {
        let wake = {
            let mut state = self.0.lock();
            if state.receiver_gone || state.items.len() >= self.0.capacity {
                return Err(item);
            }
            state.items.push_back(item);
            match &state.sink {
                Some(sink) if state.direct => {
                    if !state.listed {
                        sink.writer.schedule(self.0.clone());
                        state.listed = true;
                    }
                    false
                }
                _ => true,
            }
        };
        self.0.backlog.queued(1);
        if wake {
            self.0.receiver.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.0.lock().receiver_gone
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.receiver.wake();
    }
}

impl Receiver {
    /// Takes the front item out of `state` for the task to write (the task writes from now on)
    /// and counts it taken.
    fn take(&self, mut state: MutexGuard<'_, State>) -> Option<Out> {
        state.direct = false;
        let item = state.items.pop_front()?;
        state.cut = false;
        drop(state);
        self.0.backlog.taken(1);
        Some(item)
    }

    /// Takes the next item to write; the task writes from now on.
    pub fn try_recv(&mut self) -> Result<Out, Empty> {
        let state = self.0.lock();
        let ended = state.sender_gone;
        match self.take(state) {
            Some(item) => Ok(item),
            None if ended => Err(Empty::Ended),
            None => Err(Empty::Waiting),
        }
    }

    /// The next item; `None` once the sender is gone and everything queued was taken. With
    /// nothing queued and a socket attached, the queue turns direct until the task is woken.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Out>> {
        // Registered before looking, so that nothing queued after the look goes unnoticed.
        self.0.receiver.register(cx.waker());
        let mut state = self.0.lock();
        if state.items.is_empty() && !state.sender_gone {
            state.direct = state.sink.is_some();
            return Poll::Pending;
        }
        Poll::Ready(self.take(state))
    }

    /// The task is about to write something of its own: the writer must not write meanwhile.
    /// Returns the rest of a frame the writer wrote part of, which must go out first.
    pub fn leave_direct(&mut self) -> Option<Bytes> {
        let mut state = self.0.lock();
        state.direct = false;
        if !state.cut || !matches!(state.items.front(), Some(Out::Frame(_))) {
            return None;
        }
        match self.take(state) {
            Some(Out::Frame(rest)) => Some(rest),
            _ => None,
        }
    }

    /// What lets the stream runtime write this queue's frames to the stream's socket.
    pub fn attach_handle(&self) -> Attach {
        Attach(self.0.clone())
    }
}

impl Drop for Receiver {
    /// What is still queued will never be taken: it no longer counts as waiting.
    fn drop(&mut self) {
        let (left, _sink) = {
            let mut state = self.0.lock();
            state.receiver_gone = true;
            state.direct = false;
            (std::mem::take(&mut state.items), state.sink.take())
        };
        self.0.backlog.taken(left.len());
    }
}

impl DirectStream for Shared {
    fn attach(&self, socket: Arc<TcpStream>, writer: Arc<Writer>) {
        let mut state = self.lock();
        if !state.receiver_gone {
            state.sink = Some(Sink { socket, writer });
        }
    }

    fn flush(&self) {
        let (taken, handed_back) = {
            let mut state = self.lock();
            state.listed = false;
            let State { items, sink: Some(sink), direct: direct @ true, cut, .. } = &mut *state else {
                return;
            };
            let (taken, end) = write_queued(&sink.socket, items);
            *direct = end == Wrote::All;
            *cut = end == Wrote::Part;
            (taken, end != Wrote::All)
        };
        self.backlog.taken(taken);
        if handed_back {
            self.receiver.wake();
        }
    }
}

/// A write to a socket the client closed fails with `EPIPE` instead of raising `SIGPIPE` (which
/// Rust's runtime ignores anyway; where the flag does not exist, that is what is left).
#[cfg(any(target_os = "linux", target_os = "android"))]
const NO_SIGPIPE: std::ffi::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NO_SIGPIPE: std::ffi::c_int = 0;

/// Frames written with one call at most.
const MAX_SLICES: usize = 16;

/// How far [`write_queued`] got.
#[derive(Debug, PartialEq, Eq)]
enum Wrote {
    /// Every queued item.
    All,
    /// Up to a `Close`, or to a frame the socket took nothing of (full, or failed).
    Stopped,
    /// Part of the front frame, which now holds the rest.
    Part,
}

/// Writes the frames at the front of `items` to `socket` as far as it takes them without
/// blocking. Returns how many frames it took and how far it got; a frame it wrote part of stays
/// at the front, cut to the rest.
fn write_queued(socket: &TcpStream, items: &mut Items) -> (usize, Wrote) {
    // Straight to the socket: tokio's readiness is not asked (another allocation to read per
    // stream). While the queue is direct nothing else writes it (the task writes only after
    // taking the stream back); a `WouldBlock` here hands it back, and the task's tokio write
    // learns it again.
    let socket = socket2::SockRef::from(socket);
    let mut taken = 0;
    loop {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            for item in items.iter().take(MAX_SLICES) {
                let Out::Frame(frame) = item else { break };
                slices[n] = IoSlice::new(frame);
                n += 1;
            }
            match n {
                0 if items.is_empty() => return (taken, Wrote::All),
                0 => return (taken, Wrote::Stopped),
                1 => socket.send_with_flags(&slices[0], NO_SIGPIPE),
                _ => socket.send_vectored_with_flags(&slices[..n], NO_SIGPIPE),
            }
        };
        let Ok(mut written) = written else { return (taken, Wrote::Stopped) };
        if written == 0 {
            return (taken, Wrote::Stopped);
        }
        while written > 0 {
            let Some(Out::Frame(front)) = items.front_mut() else { break };
            if written < front.len() {
                *front = front.slice(written..);
                return (taken, Wrote::Part);
            }
            written -= front.len();
            items.pop_front();
            taken += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker;
    use tokio::io::AsyncReadExt;

    fn frame(text: &'static str) -> Out {
        Out::Frame(Bytes::from_static(text.as_bytes()))
    }

    #[test]
    fn keeps_order_and_bound_and_ends_after_the_sender() {
        let (tx, mut rx) = channel(2, Arc::default());
        assert_eq!(tx.try_send(frame("1")), Ok(()));
        assert_eq!(tx.try_send(frame("2")), Ok(()));
        assert_eq!(tx.try_send(frame("3")), Err(frame("3")), "full");
        assert_eq!(rx.try_recv(), Ok(frame("1")));
        assert_eq!(tx.try_send(Out::Close), Ok(()));
        drop(tx);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(frame("2"))));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(Out::Close)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None), "what was queued went out first");
    }

    #[test]
    fn a_gone_receiver_refuses_items() {
        let (tx, rx) = channel(4, Arc::default());
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.try_send(frame("1")), Err(frame("1")));
    }

    #[test]
    fn the_backlog_counts_down_as_items_are_taken_or_dropped() {
        let backlog = Arc::new(Backlog::default());
        let (tx, mut rx) = channel(8, backlog.clone());
        for _ in 0..3 {
            tx.try_send(frame("x")).unwrap();
        }
        assert_eq!(rx.try_recv(), Ok(frame("x")));
        assert_eq!(backlog.frames(), 2);
        drop(rx);
        assert_eq!(backlog.frames(), 0, "what was still queued no longer waits");
        assert_eq!(tx.try_send(frame("9")), Err(frame("9")));
    }

    #[tokio::test]
    async fn wakes_a_waiting_receiver() {
        let (tx, mut rx) = channel(4, Arc::default());
        let waiting = tokio::spawn(async move { std::future::poll_fn(|cx| rx.poll_recv(cx)).await });
        tokio::task::yield_now().await;
        tx.try_send(frame("7")).unwrap();
        assert_eq!(waiting.await.unwrap(), Some(frame("7")));
    }

    /// Both ends of a loopback connection.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    async fn read_exactly(peer: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        tokio::time::timeout(std::time::Duration::from_secs(10), peer.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        got
    }

    #[tokio::test]
    async fn a_waiting_stream_is_written_by_its_writer_and_hands_back_what_is_not_a_frame() {
        let (server, mut peer) = socket_pair().await;
        let backlog = Arc::new(Backlog::default());
        let writer = Arc::new(Writer::default());
        let (tx, mut rx) = channel(8, backlog.clone());
        rx.attach_handle().0.attach(Arc::new(server), writer.clone());
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waker = futures::task::waker(Arc::new(Counter(woken.clone())));
        let mut cx = Context::from_waker(&waker);

        tx.try_send(frame("before ")).unwrap();
        assert_eq!(writer.listed(), 0, "not direct until the task waits");
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(frame("before "))));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);

        tx.try_send(frame("one ")).unwrap();
        tx.try_send(frame("two ")).unwrap();
        assert_eq!(writer.listed(), 1, "listed once for both frames");
        assert_eq!(woken.load(Ordering::SeqCst), 0, "the task is not woken for frames");
        assert_eq!(backlog.frames(), 2);
        rx.0.flush();
        assert_eq!(read_exactly(&mut peer, 8).await, b"one two ");
        assert_eq!(backlog.frames(), 0);

        tx.try_send(frame("last")).unwrap();
        tx.try_send(Out::Close).unwrap();
        rx.0.flush();
        assert_eq!(read_exactly(&mut peer, 4).await, b"last");
        assert_eq!(woken.load(Ordering::SeqCst), 1, "Close goes back to the task");
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(Out::Close)));
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_goes_back_to_the_task_cut_where_it_stopped() {
        let (server, mut peer) = socket_pair().await;
        let writer = Arc::new(Writer::default());
        let (tx, mut rx) = channel(8, Arc::default());
        rx.attach_handle().0.attach(Arc::new(server), writer);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);

        let big: Vec<u8> = (0..64 << 20).map(|i| (i % 251) as u8).collect();
        tx.try_send(Out::Frame(Bytes::from(big.clone()))).unwrap();
        rx.0.flush();
        let Poll::Ready(Some(Out::Frame(rest))) = rx.poll_recv(&mut cx) else { panic!("handed back") };
        assert!(!rest.is_empty() && rest.len() < big.len(), "a part was written: {} left", rest.len());
        assert_eq!(&rest[..], &big[big.len() - rest.len()..]);
        let written = read_exactly(&mut peer, big.len() - rest.len()).await;
        assert_eq!(written, &big[..big.len() - rest.len()]);
    }

    #[tokio::test]
    async fn a_task_that_writes_its_own_frame_gets_the_rest_of_a_cut_one_first() {
        let (server, mut peer) = socket_pair().await;
        let backlog = Arc::new(Backlog::default());
        let (tx, mut rx) = channel(8, backlog.clone());
        rx.attach_handle().0.attach(Arc::new(server), Arc::new(Writer::default()));
        let waker = noop_waker();
        assert_eq!(rx.poll_recv(&mut Context::from_waker(&waker)), Poll::Pending);

        let big: Vec<u8> = (0..64 << 20).map(|i| (i % 249) as u8).collect();
        tx.try_send(Out::Frame(Bytes::from(big.clone()))).unwrap();
        rx.0.flush();
        let rest = rx.leave_direct().expect("the rest of the cut frame");
        assert_eq!(&rest[..], &big[big.len() - rest.len()..]);
        assert_eq!(backlog.frames(), 0);
        assert_eq!(rx.leave_direct(), None, "nothing cut any more");
        let written = read_exactly(&mut peer, big.len() - rest.len()).await;
        assert_eq!(written, &big[..big.len() - rest.len()]);
    }

    struct Counter(Arc<std::sync::atomic::AtomicUsize>);

    impl futures::task::ArcWake for Counter {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    use std::sync::atomic::Ordering;
}

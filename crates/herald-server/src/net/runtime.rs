//! The stream runtime: the threads that write to open SSE streams, apart from the rest.
//!
//! Thousands of streams take every broadcast. On the main runtime a publish request's database
//! round trips, the relay and the dispatch itself each queued behind all of them (2 000 streams at
//! 100 broadcasts a second made a create request wait 50 ms before its transaction even began).
//! Here the streams get threads of their own, at the same OS priority as the rest: they were at
//! nice 10 once, and every write that woke a reader on the same core then handed the core over (a
//! context switch per delivery, p99 20–25 % higher with the cores shared). Bookkeeping yields to
//! them instead (see `backlog.rs`).
//!
//! A stream that waits for its next frame, with everything before it written, is written by one
//! of the runtime's [`Writer`]s (tasks, as many as threads; a stream gets one at connect, in
//! turn): the hub lists the stream with its writer, and the writer walks its list and writes each
//! stream's frames to its socket, one wake-up per broadcast and writer instead of one task
//! wake-up and poll per stream. A write that would block, or anything else than a frame, goes
//! back to the stream's own task.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::Notify;

/// A stream whose queued frames a [`Writer`] may write to its socket.
pub trait DirectStream: Send + Sync {
    /// From now on the stream's frames may be written to `socket` by `writer` (the response head
    /// was written).
    fn attach(&self, socket: Arc<TcpStream>, writer: Arc<Writer>);
    /// Writes what is queued, if the stream's task is not writing itself.
    fn flush(&self);
}

/// Offered by a stream response (in its extensions) to the path that writes it to a socket.
#[derive(Clone)]
pub struct Attach(pub Arc<dyn DirectStream>);

/// Streams with frames to write, walked by one task of the stream runtime.
#[derive(Default)]
pub struct Writer {
    listed: Mutex<Vec<Arc<dyn DirectStream>>>,
    wake: Notify,
}

/// Streams a writer writes before it lets the runtime's other tasks (catch-ups, a stream's own
/// writes) run.
const WRITES_PER_TURN: usize = 256;

impl Writer {
    /// Lists `stream` for writing (the stream lists itself once until it is flushed).
    pub fn schedule(&self, stream: Arc<dyn DirectStream>) {
        let first = {
            let mut listed = self.listed.lock().unwrap_or_else(|e| e.into_inner());
            listed.push(stream);
            listed.len() == 1
        };
        if first {
            self.wake.notify_one();
        }
    }

    /// Streams listed and not yet flushed.
    #[cfg(test)]
    pub fn listed(&self) -> usize {
        self.listed.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        loop {
            std::mem::swap(&mut batch, &mut *self.listed.lock().unwrap_or_else(|e| e.into_inner()));
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            for (i, stream) in batch.drain(..).enumerate() {
                stream.flush();
                if i % WRITES_PER_TURN == WRITES_PER_TURN - 1 {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

pub struct StreamRuntime {
    runtime: Option<Runtime>,
    writers: Vec<Arc<Writer>>,
    next: AtomicUsize,
}

impl StreamRuntime {
    pub fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .thread_name("herald-streams")
            .build()?;
        let writers: Vec<Arc<Writer>> = (0..threads).map(|_| Arc::new(Writer::default())).collect();
        for writer in &writers {
            runtime.spawn(writer.clone().run());
        }
        Ok(Self { runtime: Some(runtime), writers, next: AtomicUsize::new(0) })
    }

    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(task);
        }
    }

    /// The writer of the next stream (streams are spread over the writers in turn).
    pub fn writer(&self) -> Arc<Writer> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.writers.len();
        self.writers[i].clone()
    }
}

impl Drop for StreamRuntime {
    /// Streams have ended by now (shutdown closes them first); do not block the caller.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

//! The stream runtime: the threads that write to open SSE streams, apart from the rest.
//!
//! Thousands of stream tasks wake for every broadcast. On the main runtime a publish request's
//! database round trips, the relay and the dispatch itself each queued behind all of them
//! (2 000 streams at 100 broadcasts a second made a create request wait 50 ms before its
//! transaction even began). Here the streams get threads of their own, at the same OS priority
//! as the rest: they were at nice 10 once, and every write that woke a reader on the same core
//! then handed the core over (a context switch per delivery, p99 20–25 % higher with the cores
//! shared). Bookkeeping yields to them instead (see `backlog.rs`).

use std::future::Future;
use tokio::runtime::{Builder, Runtime};

pub struct StreamRuntime {
    runtime: Option<Runtime>,
}

impl StreamRuntime {
    pub fn start() -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread().enable_all().thread_name("herald-streams").build()?;
        Ok(Self { runtime: Some(runtime) })
    }

    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(task);
        }
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

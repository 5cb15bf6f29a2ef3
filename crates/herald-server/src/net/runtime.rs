//! The stream runtime: the threads that write to open SSE streams, apart from the rest.
//!
//! Thousands of stream tasks wake for every broadcast. On the main runtime a publish request's
//! database round trips, the relay and the dispatch itself each queued behind all of them
//! (2 000 streams at 100 broadcasts a second made a create request wait 50 ms before its
//! transaction even began). Here the streams get threads of their own at a lower OS priority
//! (nice 10), so under load the work every delivery depends on runs first and the bulk socket
//! writes fill the remaining CPU; without contention the priority changes nothing.

use std::future::Future;
use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};
use tokio::runtime::{Builder, Runtime};

/// On Linux, a cross-platform priority of 24 (of 0–99) is nice 10.
const STREAM_PRIORITY: u8 = 24;

pub struct StreamRuntime {
    runtime: Option<Runtime>,
}

impl StreamRuntime {
    pub fn start() -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .enable_all()
            .thread_name("herald-streams")
            .on_thread_start(lower_priority)
            .build()?;
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

fn lower_priority() {
    let lowered = ThreadPriorityValue::try_from(STREAM_PRIORITY).map_err(|e| e.to_string()).and_then(|p| {
        set_current_thread_priority(ThreadPriority::Crossplatform(p)).map_err(|e| e.to_string())
    });
    if let Err(error) = lowered {
        tracing::debug!(%error, "stream threads keep the normal priority");
    }
}

//! `herald bench`: drives a running Herald from outside, over real HTTP and SSE, and reports what
//! arrived and how fast: streams held, every (stream, broadcast) pair, duplicates, latency from the
//! create request to receipt, the server's memory and CPU, time until delivery records are
//! committed, and (optionally) a reconnect storm with `Last-Event-ID`, or (`--stalled`) what
//! streams that never read cost the server.
//!
//! Against another SSE server (`--mode nchan`) it subscribes to one URL and publishes raw JSON to
//! another, so the same client measures both.

mod client;
mod proc;
mod report;
mod run;
mod stalled;

pub use report::Report;
pub use run::{run, Mode, Options, Target};

//! The network edge: the accept loop and HTTP/1.1 connections (hyper for requests, the raw socket
//! for streams), HTTP/2 connections (`h2`), TLS (`tls`), the stream runtime the raw streams are
//! written on, and the wire rules the paths share (framing checks, the JSON error body,
//! lingering close).

mod h2;
mod listener;
mod raw;
pub mod runtime;
pub mod tls;
pub mod wire;

use crate::ipnet::IpNet;
use crate::limits::ConnCounter;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use listener::{serve, Listening};
pub use raw::STREAM_PATHS;

/// What answers requests: every route, and the stream routes alone for streams answered on the
/// raw socket (`raw.rs`).
#[derive(Clone)]
pub struct Routers {
    pub all: axum::Router,
    pub streams: crate::http::StreamRoutes,
}

/// Per-connection facts handlers may need, inserted into every request's extensions.
#[derive(Clone, Debug)]
pub struct ConnCtl {
    /// Cancelling it drops the connection (and its socket) immediately.
    pub kill: CancellationToken,
    pub peer: SocketAddr,
}

/// Limits on what a connection may send before the router sees a request.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Time a client has to send its request headers (slow-loris protection).
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` of HTTP/2 connections.
    pub http2_max_streams: u32,
    /// How long a stream may accept no bytes while it has bytes to send.
    pub send_timeout: Duration,
    /// Open connections per peer address; peers that are trusted proxies are not counted here.
    pub per_ip: Arc<ConnCounter>,
    pub trusted_proxies: Arc<[IpNet]>,
}

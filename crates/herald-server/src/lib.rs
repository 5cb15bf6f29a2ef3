//! Herald's server: the HTTP API, the SSE hub, and the background tasks (relay, feed, scheduler,
//! delivery recorder, housekeeping) wired around a [`herald_store::Store`] and a
//! [`herald_bus::EventBus`].
//!
//! [`start`] builds everything on a listener the caller bound (tests bind port 0) and returns a
//! [`Running`] handle that stops it gracefully.

mod app;
mod auth;
pub mod config;
mod error;
mod extract;
mod feed;
mod housekeeping;
mod http;
pub mod hub;
mod leader;
mod limits;
mod metrics;
mod recorder;
mod relay;
mod scheduler;
mod server;
mod sse;
mod sse_conn;
mod streams;
mod strict;

pub use app::{migrate, start, ReloadHandle, Running, ServerError};
pub use auth::jwt::mint_token;
pub use config::Config;

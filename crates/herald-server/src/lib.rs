//! Herald's server: the HTTP API, the streams and their hub, and the background tasks (relay,
//! feed, scheduler, delivery recorder, housekeeping) wired around a [`herald_store::Store`] and a
//! [`herald_bus::EventBus`]. `docs/architecture.md` maps the modules.
//!
//! [`start`] builds everything on a listener the caller bound (tests bind port 0) and returns a
//! [`Running`] handle that stops it gracefully.

mod app;
mod auth;
mod backlog;
pub mod config;
mod dead_letters;
mod http;
mod ipnet;
mod limits;
mod metrics;
mod net;
mod recorder;
mod report;
mod state;
mod stream;
mod tasks;

pub use app::{migrate, start, ReloadHandle, Running, ServerError};
pub use auth::jwt::mint_token;
pub use auth::{KeyError, MintError};
pub use config::Config;
pub use net::tls::{self_signed, TlsError};
pub use report::Chain;

//! Streams: this node's hub of open streams and its replay window, SSE framing, and the SSE
//! response itself (admission, catch-up, live frames). Everything here is per node; the events
//! come from the feed (`tasks::feed`), which reads the bus.

mod body;
mod catch_up;
pub mod frame;
mod hub;
mod open;
mod presence;
mod queue;
mod service;
mod window;

pub use hub::{Hub, HubConfig, ProfileMark};
pub use open::{ConnectRequest, Refused};
pub use presence::Presence;
pub use service::StreamService;

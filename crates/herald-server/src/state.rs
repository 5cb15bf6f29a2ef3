//! The state every request handler shares: configuration, auth, limits, the store and the bus,
//! this node's hub and stream service, the delivery recorder and the metrics.

use crate::auth::Auth;
use crate::config::Config;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::stream::{Hub, Presence, StreamService};
use herald_bus::EventBus;
use herald_store::Store;
use std::ops::Deref;
use std::sync::Arc;

/// Shared state of the HTTP handlers: a cheap `Clone` of one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub auth: Auth,
    pub limits: Limits,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub hub: Arc<Hub>,
    pub streams: StreamService,
    /// Open streams of every node (bus = kafka); `None` on a single node.
    pub presence: Option<Presence>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub node_id: String,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

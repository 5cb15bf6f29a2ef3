//! The state every request handler shares: configuration, auth, limits, the store and the bus,
//! this node's hub and stream service, the delivery recorder and the metrics.

use crate::auth::Auth;
use crate::config::Config;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::stream::{Hub, Presence, StreamService};
use herald_bus::EventBus;
use herald_domain::{Timestamp, User};
use herald_store::{Store, StoreResult};
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

    /// Saves the user to the directory, announced to the hub once written ([`Hub::announced`]).
    pub async fn put_user(&self, user: User) -> StoreResult<User> {
        let (store, id) = (self.store.clone(), user.user_id.to_string());
        self.hub.announced(&id, async move { store.put_user(&user, Timestamp::now()).await }).await
    }

    /// Deletes the user from the directory, announced to the hub once done; whether they existed.
    pub async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let (store, user) = (self.store.clone(), id.to_owned());
        self.hub.announced(id, async move { store.delete_user(&user, Timestamp::now()).await }).await
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

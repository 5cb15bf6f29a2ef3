//! [`StreamService`]: what opening and feeding a stream needs, shared by every stream of the node.

use super::hub::Hub;
use super::presence::Presence;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use herald_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// What opening and feeding a stream needs: the hub, the store, the recorder and the metrics.
#[derive(Clone)]
pub struct StreamService {
    pub(super) hub: Arc<Hub>,
    pub(super) store: Arc<dyn Store>,
    pub(super) recorder: Recorder,
    pub(super) metrics: Arc<Metrics>,
    /// The reconnect delay announced in the `retry:` line.
    pub(super) retry: Duration,
    /// Streams of the whole cluster (bus = kafka), with the per-user limit over all nodes.
    pub(super) presence: Option<(Presence, usize)>,
}

impl StreamService {
    pub fn new(
        hub: Arc<Hub>,
        store: Arc<dyn Store>,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        retry: Duration,
    ) -> Self {
        Self { hub, store, recorder, metrics, retry, presence: None }
    }

    /// Registers streams cluster-wide and holds users to `per_user` streams over all nodes.
    pub fn with_presence(mut self, presence: Presence, per_user: usize) -> Self {
        self.presence = Some((presence, per_user));
        self
    }

    /// The reconnect delay announced in the `retry:` line.
    pub(super) fn retry(&self) -> Duration {
        self.retry
    }
}

//! Presence across nodes (bus = kafka): every open stream is a row in the shared database, so any
//! node can tell whether a user is connected anywhere, count the users connected to the cluster,
//! and hold a user to `max_connections_per_user` over all nodes. Rows of a node that stopped
//! heartbeating are ignored; a node clears its own rows when it starts.

use herald_domain::Timestamp;
use herald_store::{Session, Store, StoreResult};
use std::sync::Arc;
use std::time::Duration;

/// This node's view of the cluster's open streams.
#[derive(Clone)]
pub struct Presence {
    store: Arc<dyn Store>,
    node_id: Arc<str>,
    /// A node not seen for this long is dead (the leader lease's time-to-live).
    ttl: Duration,
}

impl Presence {
    pub fn new(store: Arc<dyn Store>, node_id: &str, ttl: Duration) -> Self {
        Self { store, node_id: node_id.into(), ttl }
    }

    fn live_since(&self) -> Timestamp {
        Timestamp::now().plus_millis(-(self.ttl.as_millis() as i64))
    }

    /// Registers a stream; `None` when the user already holds `limit` streams in the cluster.
    pub async fn admit(
        &self,
        user: &str,
        connection_id: &str,
        limit: usize,
    ) -> StoreResult<Option<SessionGuard>> {
        let session = Session {
            key: uuid::Uuid::new_v4().to_string(),
            connection_id: connection_id.to_owned(),
            node_id: self.node_id.to_string(),
            user_id: user.to_owned(),
        };
        let admitted = self.store.open_session(&session, limit, self.live_since()).await?;
        Ok(admitted.then(|| SessionGuard { store: self.store.clone(), key: session.key }))
    }

    /// The user's open streams on live nodes.
    pub async fn sessions_of(&self, user: &str) -> StoreResult<Vec<Session>> {
        self.store.sessions_of(user, self.live_since()).await
    }

    /// Users with a stream on a live node.
    pub async fn users(&self) -> StoreResult<i64> {
        self.store.session_users(self.live_since()).await
    }

    /// Forgets the rows an earlier run of this node left.
    pub async fn clear_own(&self) -> StoreResult<u64> {
        self.store.clear_sessions(&self.node_id).await
    }
}

/// Removes its stream's row when the stream ends.
pub struct SessionGuard {
    store: Arc<dyn Store>,
    key: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let (store, key) = (self.store.clone(), std::mem::take(&mut self.key));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.close_session(&key).await {
                    tracing::warn!(error = %crate::report::Chain(&e), "cannot remove a closed stream's row");
                }
            });
        }
    }
}

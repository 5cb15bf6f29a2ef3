//! Periodic chores: heartbeats to every stream (one frame per node, shared), and pruning the event
//! log past its retention.

use crate::stream::{frame, Hub};
use herald_domain::Timestamp;
use herald_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// The `:` comment line that keeps idle proxies from closing a stream (SPEC: every 15 s).
const COMMENT_EVERY: Duration = Duration::from_secs(15);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub async fn heartbeats(hub: Arc<Hub>, every: Duration, shutdown: CancellationToken) {
    let mut beat = interval_at(Instant::now() + every, every);
    let mut comment = interval_at(Instant::now() + COMMENT_EVERY, COMMENT_EVERY);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    comment.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = beat.tick() => hub.send_to_all(&frame::heartbeat_frame(Timestamp::now())),
            _ = comment.tick() => hub.send_to_all(&frame::comment_frame()),
            _ = shutdown.cancelled() => return,
        }
    }
}

pub async fn prune_log(store: Arc<dyn Store>, retention: Duration, shutdown: CancellationToken) {
    let mut tick = interval_at(Instant::now() + Duration::from_secs(60), PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let cutoff = Timestamp::now().plus_millis(-(retention.as_millis() as i64));
        match store.prune_events(cutoff).await {
            Ok(n) if n > 0 => tracing::info!(pruned = n, "pruned old events from the log"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %crate::report::Chain(&e), "pruning the event log failed"),
        }
    }
}

/// Closes the streams other nodes asked to close (`POST /api/user/sse/disconnect` on any node,
/// with a cluster bus).
pub async fn disconnects(
    hub: Arc<Hub>,
    mut requests: tokio::sync::broadcast::Receiver<herald_store::Disconnect>,
    shutdown: CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let next = tokio::select! {
            r = requests.recv() => r,
            _ = shutdown.cancelled() => return,
        };
        match next {
            Ok(request) => {
                let closed = hub.disconnect(&request.user, &request.connection_id);
                if closed > 0 {
                    tracing::info!(user.id = %request.user, closed, "streams closed at another node's request");
                }
            }
            Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "disconnect requests were missed"),
            Err(RecvError::Closed) => return,
        }
    }
}

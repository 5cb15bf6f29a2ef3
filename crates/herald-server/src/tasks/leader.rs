//! Leadership: the relay, the scheduler and log pruning run on one node at a time. Each node
//! tries to take or renew a lease in the database every third of its time-to-live; the holder is
//! the leader. A leader that cannot renew steps down when its lease would have run out, and a
//! node that dies simply stops renewing, so another takes over within one time-to-live.

use crate::config::BusKind;
use herald_domain::Timestamp;
use herald_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const LEASE: &str = "herald-leader";
/// How often the "several nodes on the in-process bus" error repeats while it holds.
const WARN_EVERY: Duration = Duration::from_secs(60);

pub struct Leadership {
    pub store: Arc<dyn Store>,
    pub node_id: String,
    pub ttl: Duration,
    pub bus: BusKind,
}

impl Leadership {
    pub async fn run(self, leader: watch::Sender<bool>, shutdown: CancellationToken) {
        let renew = self.ttl / 3;
        let ttl_ms = self.ttl.as_millis() as i64;
        let mut last_held: Option<Instant> = None;
        let mut last_warned: Option<Instant> = None;
        loop {
            let now = Timestamp::now();
            match self.store.try_lease(LEASE, &self.node_id, now, now.plus_millis(ttl_ms)).await {
                Ok(true) => last_held = Some(Instant::now()),
                Ok(false) => last_held = None,
                Err(e) => tracing::warn!(error = %crate::report::Chain(&e), "cannot renew the leader lease"),
            }
            let is_leader = last_held.is_some_and(|t| t.elapsed() < self.ttl);
            leader.send_if_modified(|current| {
                let changed = *current != is_leader;
                if changed {
                    tracing::info!(node = %self.node_id, leader = is_leader, "leadership changed");
                }
                *current = is_leader;
                changed
            });
            self.check_peers(now, ttl_ms, &mut last_warned).await;
            tokio::select! {
                _ = tokio::time::sleep(renew) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if *leader.borrow() {
            if let Err(e) = self.store.release_lease(LEASE, &self.node_id).await {
                tracing::warn!(error = %crate::report::Chain(&e), "could not release the leader lease");
            }
        }
    }

    /// Several live nodes cannot share the in-process bus: events reach only the leader's streams.
    async fn check_peers(&self, now: Timestamp, ttl_ms: i64, last_warned: &mut Option<Instant>) {
        let Ok(peers) = self.store.node_heartbeat(&self.node_id, now, now.plus_millis(-ttl_ms)).await else {
            return;
        };
        if peers.is_empty()
            || self.bus != BusKind::Memory
            || last_warned.is_some_and(|t| t.elapsed() < WARN_EVERY)
        {
            return;
        }
        *last_warned = Some(Instant::now());
        tracing::error!(
            ?peers,
            "other Herald nodes share this database, but bus = memory delivers events only on the leader's \
             node; several nodes need the Kafka bus (bus = kafka)"
        );
    }
}

/// Runs the task `make` builds while this node leads; cancels it when leadership is lost and
/// starts it again when it comes back.
pub async fn while_leader<F, Fut>(mut leader: watch::Receiver<bool>, shutdown: CancellationToken, make: F)
where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            alive = becomes(&mut leader, true) => if !alive { return },
            _ = shutdown.cancelled() => return,
        }
        let stop = shutdown.child_token();
        let task = make(stop.clone());
        tokio::pin!(task);
        tokio::select! {
            _ = &mut task => return,
            _ = becomes(&mut leader, false) => {
                stop.cancel();
                task.await;
            }
        }
    }
}

/// Waits until leadership equals `want`; false when the sender is gone.
async fn becomes(leader: &mut watch::Receiver<bool>, want: bool) -> bool {
    leader.wait_for(|l| *l == want).await.is_ok()
}

//! Checkpoints off the writer's path. At a checkpoint SQLite `fsync`s the WAL, copies its pages
//! into the database file and `fsync`s that. By default it happens inside whichever commit takes
//! the WAL past 1 000 pages, and the one writer is held meanwhile: a create arriving then waited
//! for it, several times per broadcast to 10 000 streams (delivery records fill the WAL). Here a
//! task makes a passive checkpoint on a read connection, which never blocks the writer: soon after
//! each write that did not wait for the disk (so that the next durable commit, a create, finds
//! little left to flush), and every [`EVERY`] in any case. The writer's own automatic checkpoint
//! stays, at [`BACKSTOP_PAGES`], for a WAL that grows faster than this keeps up with.

use sqlx::{Pool, Sqlite};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// WAL pages past which a commit checkpoints by itself (SQLite's default: 1 000).
pub(crate) const BACKSTOP_PAGES: u32 = 10_000;
/// Longest between two checkpoints.
const EVERY: Duration = Duration::from_secs(1);
/// Shortest between two checkpoints: a burst of writes (stream connects adding their users) gets
/// a few, not one per write (each costs two `fsync`s and a copy of the pages written since).
const GAP: Duration = Duration::from_millis(200);

/// The task; it stops at [`Checkpointer::stop`], or when this is dropped.
pub(crate) struct Checkpointer {
    task: Mutex<Option<JoinHandle<()>>>,
    wake: Arc<Notify>,
}

impl Checkpointer {
    pub(crate) fn start(read: Pool<Sqlite>) -> Self {
        let wake = Arc::new(Notify::new());
        let woken = wake.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = woken.notified() => {}
                    _ = tick.tick() => {}
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&read).await {
                    if read.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "checkpointing the WAL failed");
                }
                tokio::time::sleep(GAP).await;
            }
        });
        Self { task: Mutex::new(Some(task)), wake }
    }

    /// Asks for a checkpoint soon: something was written that only a later `fsync` makes durable.
    pub(crate) fn soon(&self) {
        self.wake.notify_one();
    }

    /// Stops the task and waits until it has (before the pools close).
    pub(crate) async fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use herald_store_sql::Dialect;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn the_wal_reaches_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.db");
        let store = crate::open(&format!("sqlite://{}", file.display())).await.unwrap();
        let d = store.dialect();
        let pages: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(d.writer()).await.unwrap();
        assert_eq!(pages, i64::from(super::BACKSTOP_PAGES), "the writer's own checkpoint is only a backstop");
        // Whatever the migrations left in the WAL goes first, so that only the write below can
        // make the file grow.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(d.writer()).await.unwrap();
        let before = std::fs::metadata(&file).unwrap().len();
        // Far fewer pages than any automatic checkpoint needs.
        let ids: Vec<String> = (0..2_000).map(|i| format!("user-{i:05}")).collect();
        let sql =
            "INSERT INTO users (user_id, created_at, updated_at) SELECT value, $1, $2 FROM json_each($3)";
        let list = serde_json::to_string(&ids).unwrap();
        assert_eq!(d.write_relaxed(&[(sql, 5, 5, &list)]).await.unwrap(), 2_000);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).unwrap().len() <= before {
            assert!(Instant::now() < deadline, "the database file never grew: no checkpoint");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        d.close().await;
    }
}

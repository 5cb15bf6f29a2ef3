//! Group commit for first-time users. Every stream connect of a user the directory does not know
//! yet inserts a bare row; one transaction each made a ramp of 15 000 new users take 10 s behind
//! the single writer. Callers queue their ids; whoever holds the flush lock writes everything
//! queued so far in one statement, so a burst of connects costs a handful of transactions.

use herald_domain::Timestamp;
use herald_store::{StoreError, StoreResult};
use sqlx::SqlitePool;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Told whether its id was inserted (false: the user existed already).
type Waiter = oneshot::Sender<StoreResult<bool>>;

#[derive(Default)]
pub struct UserJoiner {
    queue: Mutex<Vec<(String, Waiter)>>,
    flush: tokio::sync::Mutex<()>,
}

impl UserJoiner {
    /// Inserts a bare user row for `id` unless one exists; returns once it is committed, with
    /// whether this call inserted it.
    pub async fn insert_bare(&self, pool: &SqlitePool, id: &str, now: Timestamp) -> StoreResult<bool> {
        let (tx, rx) = oneshot::channel();
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push((id.to_owned(), tx));
        {
            let _flushing = self.flush.lock().await;
            let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
            if !batch.is_empty() {
                // A task of its own: a caller that goes away mid-write cannot strand the others.
                let pool = pool.clone();
                let _ = tokio::spawn(write(pool, batch, now)).await;
            }
        }
        match rx.await {
            Ok(result) => result,
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}

async fn write(pool: SqlitePool, batch: Vec<(String, Waiter)>, now: Timestamp) {
    let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
    let result: StoreResult<HashSet<String>> = match serde_json::to_string(&ids) {
        Ok(ids) => sqlx::query_scalar(
            "INSERT INTO users (user_id, created_at, updated_at) SELECT value, ?2, ?2 FROM json_each(?1) \
             WHERE true ON CONFLICT DO NOTHING RETURNING user_id",
        )
        .bind(ids)
        .bind(now.millis())
        .fetch_all(&pool)
        .await
        .map(|inserted: Vec<String>| inserted.into_iter().collect())
        .map_err(StoreError::from),
        Err(e) => Err(StoreError::backend(e)),
    };
    for (id, waiter) in batch {
        let _ =
            waiter.send(result.as_ref().map(|inserted| inserted.contains(&id)).map_err(StoreError::clone));
    }
}

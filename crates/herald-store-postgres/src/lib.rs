//! Herald's production backend: PostgreSQL.
//!
//! Every write commits its state change and its outbox event in one transaction; triggers `NOTIFY`
//! the other nodes, and a listener turns those notifications into this process's [`Signals`], so
//! the leader's relay and scheduler wake for writes made on any node. Every statement is shared
//! with SQLite (`herald-store-sql`); this crate holds only what PostgreSQL does its own way.

mod dialect;
mod relay;

pub use dialect::Postgres;
use herald_store::{Disconnect, Signals, StoreError, StoreResult};
use herald_store_sql::{migrator, Connections, SqlStore};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The PostgreSQL store.
pub type PgStore = SqlStore<Postgres>;

/// Pool limits: enough connections for the API, the recorder and the background tasks, and
/// short waits so an unreachable database answers 503 quickly instead of hanging requests.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

pub const OUTBOX_CHANNEL: &str = "herald_outbox";
pub const SCHEDULE_CHANNEL: &str = "herald_schedule";
/// Carries the newest logged position after every insert into the log (migration 0005).
pub const LOG_CHANNEL: &str = "herald_log";
/// Carries a user id whose streams every node closes (`POST /api/user/sse/disconnect`).
pub const DISCONNECT_CHANNEL: &str = "herald_disconnect";

const MIGRATIONS: [(i64, &str, &str); 5] = [
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "deliveries by broadcast only", include_str!("../migrations/0002_deliveries_by_broadcast_only.sql")),
    (
        3,
        "outbox kind and notify triggers",
        include_str!("../migrations/0003_outbox_kind_and_notify_triggers.sql"),
    ),
    (4, "names match ignoring case", include_str!("../migrations/0004_names_match_ignoring_case.sql")),
    (5, "cluster", include_str!("../migrations/0005_cluster.sql")),
];

/// Connects to `url` (`postgres://…`) and migrates (under an advisory lock, so several nodes
/// may start at once).
pub async fn open(url: &str, settings: PoolSettings) -> StoreResult<PgStore> {
    let statement_timeout = format!("{}ms", settings.statement_timeout.as_millis());
    let options = PgConnectOptions::from_str(url)?
        .application_name("herald")
        .options([("statement_timeout", statement_timeout.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Duration::from_secs(600))
        .connect_with(options)
        .await?;
    migrator(&MIGRATIONS).run(&pool).await.map_err(StoreError::backend)?;
    let signals = Arc::new(Signals::default());
    let listener = tokio::spawn(listen(pool.clone(), signals.clone()));
    let connections = Connections { read: pool.clone(), write: pool, signals };
    Ok(SqlStore::new(Postgres { connections, listener }))
}

/// Forwards `NOTIFY`s to [`Signals`]. After any (re)connection both signals fire, since
/// notifications sent while disconnected are lost.
async fn listen(pool: PgPool, signals: Arc<Signals>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for notifications; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) =
            listener.listen_all([OUTBOX_CHANNEL, SCHEDULE_CHANNEL, LOG_CHANNEL, DISCONNECT_CHANNEL]).await
        {
            tracing::warn!(error = %e, "cannot listen for notifications; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        signals.outbox.notify_one();
        signals.schedule.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => match n.channel() {
                    OUTBOX_CHANNEL => signals.outbox.notify_one(),
                    LOG_CHANNEL => {
                        if let Ok(seq) = n.payload().parse::<i64>() {
                            signals.logged(seq);
                        }
                    }
                    DISCONNECT_CHANNEL => {
                        if let Some(request) = Disconnect::from_payload(n.payload()) {
                            let _ = signals.disconnect.send(request);
                        }
                    }
                    _ => signals.schedule.notify_one(),
                },
                Ok(None) => {
                    signals.outbox.notify_one();
                    signals.schedule.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod migration_tests {
    /// A migration file that is not in `MIGRATIONS` would silently never run.
    #[test]
    fn every_migration_file_is_registered_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let versions: Vec<i64> = files.iter().map(|f| f[..4].parse().unwrap()).collect();
        let registered: Vec<i64> = super::MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
        assert_eq!(versions, registered);
        for ((_, _, sql), file) in super::MIGRATIONS.iter().zip(&files) {
            let on_disk = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(file),
            )
            .unwrap();
            assert_eq!(*sql, on_disk, "{file}");
        }
    }
}

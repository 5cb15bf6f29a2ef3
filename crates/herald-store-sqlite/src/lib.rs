//! Herald's embedded backend: SQLite in WAL mode, one file.
//!
//! Writes go through a pool of exactly one connection, so transactions never contend for
//! SQLite's single write lock (no `SQLITE_BUSY` upgrades); reads use a separate pool and see
//! committed data through WAL snapshots. Because there is one writer, events get their log
//! position in the transaction that writes them (commit order is position order): no outbox and
//! no relay transaction. Every statement is shared with PostgreSQL (`herald-store-sql`); this crate
//! holds only what SQLite does its own way.

mod checkpoint;
mod dialect;
mod legacy;
mod lock;

pub use dialect::Sqlite;
use herald_store::{StoreError, StoreResult};
use herald_store_sql::{migrator, Connections, SqlStore};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// The SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

const MIGRATIONS: [(i64, &str, &str); 5] = [
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "deliveries by broadcast only", include_str!("../migrations/0002_deliveries_by_broadcast_only.sql")),
    (3, "positions at write", include_str!("../migrations/0003_positions_at_write.sql")),
    (4, "names match ignoring case", include_str!("../migrations/0004_names_match_ignoring_case.sql")),
    (5, "cluster", include_str!("../migrations/0005_cluster.sql")),
];

/// A bad SQLite URL or a file that cannot be created.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct OpenError(String);

/// Opens (creating the file and its directory if missing) and migrates the database at `url`
/// (`sqlite://path/to/file.db`). Fails while another process has it open (see `lock.rs`).
pub async fn open(url: &str) -> StoreResult<SqliteStore> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::backend(OpenError(format!("bad SQLite URL '{url}': {e}"))))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: an acknowledged broadcast survives even an OS crash, not just a process crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        // Checkpoints are made beside the writer (`checkpoint.rs`).
        .pragma("wal_autocheckpoint", checkpoint::BACKSTOP_PAGES.to_string())
        .foreign_keys(true);
    if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::backend(OpenError(format!("cannot create {}: {e}", dir.display()))))?;
    }
    let lock = lock::FileLock::take(url, options.get_filename()).map_err(StoreError::backend)?;
    // No ping before handing a connection out (sqlx's default): an SQLite connection is a file
    // in this process, and the ping was one more round trip to its thread per statement.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await?;
    migrator(&MIGRATIONS).run(&write).await.map_err(StoreError::backend)?;
    let read = SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    let moved = legacy::drain_outbox(&write).await?;
    if moved > 0 {
        tracing::info!(events = moved, "moved events left in the outbox into the log");
    }
    let checkpoints = checkpoint::Checkpointer::start(read.clone());
    let connections = Connections { read, write, signals: Default::default() };
    Ok(SqlStore::new(Sqlite { connections, lock, checkpoints }))
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

//! The narrow seam between the shared SQL and a database: what SQLite and PostgreSQL really do
//! differently. Everything else (the statements, the row mapping, the write paths and their
//! decisions) is written once in this crate.

use herald_domain::TargetType;
use herald_store::{Disconnect, Signals, StoreResult};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

/// A backend's pools (SQLite: one writer and a read pool; PostgreSQL: one pool for both) and the
/// wake-ups it gives after committing.
pub struct Connections<DB: Database> {
    pub read: Pool<DB>,
    pub write: Pool<DB>,
    pub signals: Arc<Signals>,
}

/// A backend's migrations, each `(version, name, sql)`: versioned, never edited once released.
pub fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = migrations
        .iter()
        .map(|(version, name, sql)| {
            Migration::new(*version, Cow::Borrowed(*name), MigrationType::Simple, Cow::Borrowed(*sql), false)
        })
        .collect();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// Runs `statements`, each `(sql, $1 integer, $2 integer, $3 text)`, on `conn`: a lone one as it
/// is, several in one transaction begun with `begin`. Returns the rows written, as `rows` counts
/// them in a result (sqlx has no common method for it). The body of [`Dialect::write_relaxed`].
pub async fn execute_all<DB: Database>(
    conn: &mut DB::Connection,
    begin: &'static str,
    statements: &[(&str, i64, i64, &str)],
    rows: impl Fn(&DB::QueryResult) -> u64,
) -> StoreResult<u64>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> i64: Encode<'r, DB> + Type<DB>,
    for<'r> &'r str: Encode<'r, DB> + Type<DB>,
{
    let run = |sql, a, b, text| sqlx::query::<DB>(sql).bind(a).bind(b).bind(text);
    if let [(sql, a, b, text)] = statements {
        return Ok(rows(&run(*sql, *a, *b, *text).execute(&mut *conn).await?));
    }
    let mut tx = sqlx::Connection::begin_with(&mut *conn, begin).await?;
    let mut written = 0;
    for (sql, a, b, text) in statements {
        written += rows(&run(*sql, *a, *b, *text).execute(&mut *tx).await?);
    }
    tx.commit().await?;
    Ok(written)
}

/// A backend: its pools and transactions, the SQL fragments where the two dialects differ, and the
/// few operations that exist on one side only.
pub trait Dialect: Send + Sync + Sized + 'static {
    type DB: Database;

    fn connections(&self) -> &Connections<Self::DB>;

    /// The pool reads go to.
    fn reader(&self) -> &Pool<Self::DB> {
        &self.connections().read
    }

    /// The pool statements outside a transaction write through.
    fn writer(&self) -> &Pool<Self::DB> {
        &self.connections().write
    }

    /// Wake-ups for the relay and the scheduler.
    fn signals(&self) -> &Signals {
        &self.connections().signals
    }

    /// A write transaction ([`Dialect::BEGIN`]).
    fn begin(&self) -> impl Future<Output = StoreResult<Transaction<'static, Self::DB>>> + Send {
        async move { Ok(self.writer().begin_with(Self::BEGIN).await?) }
    }

    fn close(&self) -> impl Future<Output = ()> + Send {
        async move {
            self.reader().close().await;
            self.writer().close().await;
        }
    }

    /// Gives committed events their log positions, for the relay. PostgreSQL moves outbox rows
    /// into the log (many writers commit in any order, so positions wait for commit); SQLite
    /// assigned them in the writing transaction (one writer: commit order is position order).
    fn assign_positions(&self, limit: u32) -> impl Future<Output = StoreResult<()>> + Send;
    /// Runs `statements`, each `(sql, $1 integer, $2 integer, $3 text)`, as one write that need not
    /// reach the disk before it returns, where that spares the backend an `fsync` of its own
    /// (SQLite: an OS crash may undo it, a process crash cannot; the next durable commit carries it
    /// to disk): for writes that are redone on demand, like adding a connecting user to the
    /// directory, or whose loss costs a message delivered again, like delivery records. Returns the
    /// rows written.
    fn write_relaxed(
        &self,
        statements: &[(&str, i64, i64, &str)],
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Tells every node's [`Signals::disconnect`] to close a stream: PostgreSQL through `NOTIFY`,
    /// SQLite (one node) directly.
    fn announce_disconnect(&self, request: &Disconnect) -> impl Future<Output = StoreResult<()>> + Send;
    /// Whatever else a new broadcast's target ids need besides the column (SQLite indexes them in
    /// a table of their own, PostgreSQL in a GIN index of the array).
    fn index_targets(
        conn: &mut <Self::DB as Database>::Connection,
        broadcast_id: i64,
        ids_json: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// How a write transaction begins. SQLite takes its one write lock up front (`BEGIN
    /// IMMEDIATE`), so a transaction never fails half-way on a lock upgrade.
    const BEGIN: &'static str;
    /// Appends an event in the writing transaction: binds `$1` kind, `$2` broadcast id, `$3`
    /// record, `$4` time. SQLite writes it to the log at the next position; PostgreSQL to the
    /// outbox (whose trigger notifies the other nodes).
    const APPEND: &'static str;
    /// Lease take-over condition: binds `$3` now. PostgreSQL only takes a lease that is its own or
    /// has expired; an SQLite file belongs to one process, which always gets it (a process
    /// restarted after a crash must not wait for its predecessor's lease).
    const LEASE_TAKEOVER: &'static str;
    /// Locks the rows a `SELECT` read for the rest of the transaction (SQLite's one writer needs
    /// no lock).
    const FOR_UPDATE: &'static str;
    /// Orders user ids byte-wise, as SQLite does (PostgreSQL would follow the locale).
    const BYTE_ORDER: &'static str;
    /// The broadcast columns of `broadcasts b`, with the correlation id and the target ids as
    /// text (a UUID and a JSON array).
    const BROADCAST_COLUMNS: &'static str;

    /// The integers of the JSON array bound as `$n`, as a one-column subquery.
    fn json_ints(n: usize) -> String;
    /// The strings of the JSON array bound as `$n`, as a one-column subquery.
    fn json_texts(n: usize) -> String;
    /// The strings of the JSON array bound as `$n`, as a table `alias` with one text column
    /// `value`.
    fn json_text_rows(n: usize, alias: &str) -> String;
    /// The elements of the JSON array of arrays bound as `$n`, as a table `alias` with one column
    /// `value` whose items `value ->> i` reads as text.
    fn json_array_rows(n: usize, alias: &str) -> String;
    /// The aggregate of `expr` over the rows as a JSON array in text (`[]` for none): a statement
    /// answers in one row, where sqlx hands SQLite's rows over from its thread one at a time.
    fn json_agg(expr: &str) -> String;
    /// The JSON array `[a, b]`, for [`Dialect::json_agg`].
    fn json_pair(a: &str, b: &str) -> String;
    /// The value for the `target_ids` column from the JSON array bound as `$n`.
    fn target_ids_value(n: usize) -> String;
    /// The value for the `correlation_id` column from the text bound as `$n`.
    fn uuid_value(n: usize) -> String;
    /// The text `expr` with the letters A–Z lowered and nothing else changed: role and product
    /// names compare by it (`herald_domain::same_name`).
    fn fold(expr: &str) -> String;
    /// A condition: broadcast `b` targets the user whose id is the SQL expression `user` (`$1`, a
    /// column).
    fn targets_user(user: &str) -> String;
    /// `SELECT bid, user_id`: the audience of each broadcast of type `t` whose id is in the JSON
    /// array bound as `$n`.
    fn audience(t: TargetType, n: usize) -> String;
}

//! Herald's storage, written once for SQL. Every statement, every row mapping and every write
//! path lives here, generic over a [`Dialect`] that each backend implements where SQLite and
//! PostgreSQL really differ: how a write transaction begins, where an event is appended (the log
//! at once, or an outbox the relay moves), `json_each` against PostgreSQL's JSON functions and
//! arrays, row locks, and `NOTIFY`. The write paths load rows, let the domain decide
//! ([`herald_domain::command`]), save what it returns and append its events.
//!
//! The generic code needs the same capabilities of the sqlx driver everywhere (execute on a pool
//! or a connection, bind and read `i64`, `String`, `&str`, `bool`); each `impl` block states them
//! in the same `where` clause.

mod broadcasts;
mod cluster;
mod dialect;
mod gather;
mod log;
mod messages;
mod rows;
mod schedule;
mod store;
mod users;

pub use dialect::{execute_all, migrator, Connections, Dialect};
pub use store::SqlStore;

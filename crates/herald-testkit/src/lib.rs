//! Test support shared by Herald's test suites: fresh databases on both backends, a real server on
//! port 0 driven over HTTP, a small real SSE client, and development tokens.

mod app;
mod db;
mod h2;
mod sse;
mod token;

pub use app::{id_of, spawn_app, spawn_on, spawn_with, TestApp};
pub use db::{with_database, Backend, TestDb, POSTGRES_ENV};
pub use h2::{tls_connect, write_cert, H2Client};
pub use sse::{SseClient, SseEvent};
pub use token::{token, token_with};

use std::time::Duration;

/// How long a test waits for anything before it fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// Generates, for each named `async fn(Backend)`, one test on SQLite and one on PostgreSQL.
/// The PostgreSQL test says it is skipped when `HERALD_TEST_POSTGRES_URL` is not set.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::Backend::postgres_available(stringify!($name)) {
                        super::$name($crate::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}

//! A fresh, empty database per test: a temporary SQLite file, or a new PostgreSQL database on the
//! server `HERALD_TEST_POSTGRES_URL` names (created here, dropped by [`TestDb::drop_database`]).

use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const POSTGRES_ENV: &str = "HERALD_TEST_POSTGRES_URL";

impl Backend {
    pub fn postgres_available(test: &str) -> bool {
        let set = std::env::var(POSTGRES_ENV).is_ok();
        if !set {
            println!("skipped: {test} on PostgreSQL ({POSTGRES_ENV} is not set)");
        }
        set
    }

    /// A fresh, empty database for one test: a temporary SQLite file, or a new PostgreSQL database
    /// on the server `HERALD_TEST_POSTGRES_URL` names.
    pub async fn fresh_database(self) -> TestDb {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("herald.db").display());
                TestDb { url, dir: Some(dir), pg: None }
            }
            Backend::Postgres => {
                let admin = std::env::var(POSTGRES_ENV).expect(POSTGRES_ENV);
                let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_ENV}: {e}"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let url = with_database(&admin, &name);
                TestDb { url, dir: None, pg: Some((admin, name)) }
            }
        }
    }
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let root = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A test's database; [`TestDb::drop_database`] removes a PostgreSQL one.
pub struct TestDb {
    pub url: String,
    dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A database the test manages itself (nothing is created or dropped).
    pub fn external(url: String) -> Self {
        Self { url, dir: None, pg: None }
    }

    pub async fn drop_database(self) {
        if let Some((admin, name)) = self.pg {
            let dropped = match sqlx::PgConnection::connect(&admin).await {
                Ok(mut conn) => sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = dropped {
                eprintln!("could not drop test database {name}: {e}");
            }
        }
        drop(self.dir);
    }
}

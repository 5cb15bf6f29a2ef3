//! Test harness: a real Herald on port 0 over a fresh SQLite file, driven over HTTP, with a small
//! real SSE client.

#![allow(dead_code)]

use bytes::Bytes;
use futures::{Stream, StreamExt};
use herald_server::{Config, Running};
use serde_json::{json, Value};
use std::pin::Pin;
use std::time::Duration;
use tokio::net::TcpListener;

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
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::common::Backend::postgres_available(stringify!($name)) {
                        super::$name($crate::common::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}

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

use sqlx::Connection;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub config: Config,
    running: Option<Running>,
    db: Option<TestDb>,
}

/// A server with the demo directory (user-001..user-010).
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, |_| {}).await
}

pub async fn spawn_with(backend: Backend, tune: impl FnOnce(&mut Config)) -> TestApp {
    spawn_on(backend.fresh_database().await, tune).await
}

pub async fn spawn_on(db: TestDb, tune: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config {
        database_url: db.url.clone(),
        demo: true,
        shutdown_grace: Duration::from_secs(2),
        delivery_flush_interval: Duration::from_millis(20),
        // Tests publish and connect in bursts; the limit tests set their own.
        broadcasts_per_admin_per_minute: 1_000_000,
        connects_per_ip_per_minute: 1_000_000,
        ..Config::default()
    };
    tune(&mut config);
    start(config, db).await
}

async fn start(config: Config, db: TestDb) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let running = herald_server::start(config.clone(), listener).await.expect("server starts");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    TestApp { base, client, config, running: Some(running), db: Some(db) }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server, waits (with a deadline) until `ready` holds, then starts it again on
    /// the same database.
    pub async fn restart_after(mut self, ready: impl Fn() -> bool) -> TestApp {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        while !ready() {
            assert!(tokio::time::Instant::now() < deadline, "restart condition not met");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start(self.config.clone(), self.db.take().expect("database")).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("json")
    }

    /// Creates a broadcast from admin-1 with `extra` fields merged in; asserts 201.
    pub async fn publish(&self, extra: Value) -> Value {
        let mut body =
            json!({"senderId": "admin-1", "senderName": "Admin", "content": "hello", "targetType": "ALL"});
        for (k, v) in extra.as_object().expect("object").iter() {
            body[k] = v.clone();
        }
        let r = self.post("/api/admin/broadcasts", body).await;
        let status = r.status();
        let value: Value = r.json().await.expect("json");
        assert_eq!(status, 201, "create failed: {value}");
        value
    }

    pub async fn connect(&self, user: &str) -> SseClient {
        self.connect_with(user, &[]).await
    }

    /// Opens a stream with extra query pairs and headers (`("last-event-id", "3")` goes in a header).
    pub async fn connect_with(&self, user: &str, extra: &[(&str, &str)]) -> SseClient {
        let mut req = self.client.get(self.url("/api/user/sse/connect")).query(&[("userId", user)]);
        for (k, v) in extra {
            req = if k.eq_ignore_ascii_case("last-event-id") {
                req.header("Last-Event-ID", *v)
            } else {
                req.query(&[(k, v)])
            };
        }
        let resp = req.send().await.expect("connect");
        assert_eq!(resp.status(), 200, "connect {user}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseClient::new(resp)
    }

    /// Opens a stream and waits for its CONNECTED event.
    pub async fn online(&self, user: &str) -> SseClient {
        let mut c = self.connect(user).await;
        c.expect("CONNECTED").await;
        c
    }

    pub async fn stats(&self, id: i64) -> Value {
        self.get_json(&format!("/api/admin/broadcasts/{id}/stats")).await
    }

    /// Polls `path` until `check` accepts the JSON, or fails after [`WAIT`].
    pub async fn eventually(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.get_json(path).await;
            if check(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "condition on {path} not met; last: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data of {} is not JSON ({e}): {}", self.event, self.data))
    }

    pub fn broadcast_id(&self) -> i64 {
        self.json()["broadcastId"].as_i64().expect("broadcastId")
    }

    pub fn seq(&self) -> i64 {
        self.id.as_deref().expect("id").parse().expect("numeric id")
    }
}

pub struct SseClient {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: Vec<u8>,
    pub retry: Option<u64>,
    pub comments: usize,
    ended: bool,
}

impl SseClient {
    pub fn new(resp: reqwest::Response) -> Self {
        Self { body: Box::pin(resp.bytes_stream()), buf: Vec::new(), retry: None, comments: 0, ended: false }
    }

    /// The next event of any kind (heartbeats included), `None` when the stream ended.
    pub async fn next_any(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let block = String::from_utf8(block).expect("events are UTF-8");
                if let Some(ev) = self.parse_block(&block) {
                    return Some(ev);
                }
                continue;
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout(WAIT, self.body.next()).await {
                Err(_) => {
                    panic!("no SSE data within {WAIT:?}; buffered: {:?}", String::from_utf8_lossy(&self.buf))
                }
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Some(Err(_)) | None) => self.ended = true,
            }
        }
    }

    fn parse_block(&mut self, block: &str) -> Option<SseEvent> {
        let (mut id, mut event, mut data) = (None, None, None::<String>);
        for line in block.lines() {
            if line.starts_with(':') {
                self.comments += 1;
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                assert!(data.is_none(), "data spans several lines: {block:?}");
                data = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("retry: ") {
                self.retry = v.parse().ok();
            }
        }
        Some(SseEvent { id, event: event?, data: data.unwrap_or_default() })
    }

    /// The next event that is not a heartbeat.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let ev = self.next_any().await?;
            if ev.event != "HEARTBEAT" {
                return Some(ev);
            }
        }
    }

    /// The next non-heartbeat event, which must be `name`.
    pub async fn expect(&mut self, name: &str) -> SseEvent {
        let ev = self.next_event().await.unwrap_or_else(|| panic!("stream ended while waiting for {name}"));
        assert_eq!(ev.event, name, "unexpected event: {ev:?}");
        ev
    }

    /// The next event must be the MESSAGE of broadcast `id`.
    pub async fn expect_message(&mut self, id: i64) -> SseEvent {
        let ev = self.expect("MESSAGE").await;
        assert_eq!(ev.broadcast_id(), id, "unexpected message: {ev:?}");
        ev
    }

    /// Asserts that the stream ends (after any remaining events, which are returned).
    pub async fn until_end(&mut self) -> Vec<SseEvent> {
        let mut rest = Vec::new();
        while let Some(ev) = self.next_any().await {
            rest.push(ev);
        }
        rest
    }
}

pub fn id_of(broadcast: &Value) -> i64 {
    broadcast["id"].as_i64().expect("id")
}

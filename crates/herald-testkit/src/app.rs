//! A real Herald on port 0 over a fresh database, with the demo directory, driven over HTTP.

use crate::db::{Backend, TestDb};
use crate::sse::SseClient;
use crate::WAIT;
use herald_server::{Config, Running};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpListener;

/// A server with the demo directory (user-001..user-010).
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, |_| {}).await
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub config: Config,
    running: Option<Running>,
    db: Option<TestDb>,
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
    let scheme = if config.tls_cert_file.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{}", running.addr);
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    TestApp { base, client, config, running: Some(running), db: Some(db) }
}

impl TestApp {
    /// The server's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().expect("running").addr
    }

    /// The handle that re-reads the JWT keys and TLS files, as SIGHUP does.
    pub fn reload_handle(&self) -> herald_server::ReloadHandle {
        self.running.as_ref().expect("running").reload_handle()
    }

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

/// The `id` of a broadcast object.
pub fn id_of(broadcast: &Value) -> i64 {
    broadcast["id"].as_i64().expect("id")
}

//! The `herald` binary as a process: crash durability (SIGKILL), graceful SIGTERM, and the
//! `config` / `migrate` subcommands.

use futures::StreamExt;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

struct Server {
    child: Child,
    base: String,
}

/// Starts `herald serve` on a free port over `db` and waits for its ready log line.
#[allow(clippy::zombie_processes)] // `Server`'s Drop kills and reaps the child.
fn serve(db: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .env_remove("HERALD_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("herald starts");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("ready line");
        let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
        if v["fields"]["message"] == "herald is ready" {
            let addr = v["fields"]["addr"].as_str().expect("addr").to_owned();
            return Server { child, base: format!("http://{addr}") };
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig}");
    }

    /// Waits for the process to exit, with a deadline.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "herald did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn publish(client: &reqwest::Client, base: &str) -> i64 {
    let body =
        json!({"senderId": "admin-1", "senderName": "Admin", "content": "durable", "targetType": "ALL"});
    let r = client.post(format!("{base}/api/admin/broadcasts")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// Reads the stream until `needle` appears (or the stream ends), returning everything read.
async fn read_until(resp: reqwest::Response, needle: &str) -> String {
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let _ = tokio::time::timeout(WAIT, async {
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains(needle) {
                break;
            }
        }
    })
    .await;
    text
}

#[tokio::test]
async fn a_broadcast_acknowledged_just_before_sigkill_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("herald.db");
    let client = reqwest::Client::new();
    let mut first = serve(&db);
    let id = publish(&client, &first.base).await;
    first.child.kill().unwrap(); // SIGKILL, right after the 201
    first.wait_exit();

    let mut second = serve(&db);
    let resp =
        client.get(format!("{}/api/user/sse/connect?userId=user-007", second.base)).send().await.unwrap();
    let text = read_until(resp, "event: MESSAGE").await;
    assert!(text.contains(&format!("\"broadcastId\":{id}")), "not delivered after restart: {text}");
    second.child.kill().unwrap();
    second.wait_exit();
}

#[tokio::test]
async fn sigterm_sends_server_shutdown_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(&dir.path().join("herald.db"));
    let client = reqwest::Client::new();
    let resp =
        client.get(format!("{}/api/user/sse/connect?userId=user-001", server.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let reader = tokio::spawn(read_until(resp, "event: SERVER_SHUTDOWN"));
    // Wait until the stream is registered before signalling.
    let deadline = Instant::now() + WAIT;
    while client
        .get(format!("{}/api/user/sse/connected/user-001", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        != "true"
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    server.signal("-TERM");
    let text = reader.await.unwrap();
    assert!(text.contains("event: SERVER_SHUTDOWN"), "{text}");
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
}

#[test]
fn config_prints_a_commented_default_file_and_migrate_creates_the_database() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald")).arg("config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("# ") && text.contains("listen = \"127.0.0.1:8080\""), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("herald.db");
    let status = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["migrate", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(db.exists(), "migrate creates the database file and its directory");
}

#[test]
fn a_bad_configuration_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.toml");
    std::fs::write(&file, "max_connections_per_user = 0\n").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_herald")).args(["serve", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_connections_per_user"), "{err}");
}

//! The `herald` binary as a process: crash durability (SIGKILL), graceful SIGTERM, the
//! `config` / `migrate` subcommands, and `cert` with TLS serving and its SIGHUP reload.

use crate::support::{serve, WAIT};
use futures::StreamExt;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

fn sqlite(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
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
    let mut first = serve(&sqlite(&db), &[]);
    let id = publish(&client, &first.base).await;
    first.child.kill().unwrap(); // SIGKILL, right after the 201
    first.wait_exit();

    let mut second = serve(&sqlite(&db), &[]);
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
    let mut server = serve(&sqlite(&dir.path().join("herald.db")), &[]);
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

/// Waits for a log line containing `needle`.
fn log_line(server: &crate::support::Server, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server.logs.recv_timeout(left).unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn cert_writes_a_pair_that_serve_uses_and_rereads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let cert_cmd = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["cert", "--self-signed", "--host", "localhost,127.0.0.1", "--out-dir"])
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let out = cert_cmd(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (crt, key) = (dir.path().join("herald.crt"), dir.path().join("herald.key"));
    assert!(std::fs::read_to_string(&crt).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    let again = cert_cmd(&[]);
    assert!(!again.status.success(), "an existing pair is not overwritten without --force");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let db = sqlite(&dir.path().join("herald.db"));
    let (crt_s, key_s) = (crt.to_str().unwrap(), key.to_str().unwrap());
    let server = serve(&db, &["--tls-cert-file", crt_s, "--tls-key-file", key_s]);
    assert!(server.startup.iter().any(|l| l.contains("\"scheme\":\"https\"")), "{:?}", server.startup);
    assert!(cert_cmd(&["--force"]).status.success());
    server.signal("-HUP");
    log_line(&server, "TLS certificate and key reloaded");
    std::fs::write(&key, "garbage").unwrap();
    server.signal("-HUP");
    let line = log_line(&server, "reloading the TLS certificate failed");
    assert!(line.contains("herald.key"), "{line}");
}

#[test]
fn serve_refuses_to_start_with_an_unreadable_certificate_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert-file", "/nonexistent/herald.crt"])
        .args(["--tls-key-file", "/nonexistent/herald.key", "--database-url"])
        .arg(sqlite(&dir.path().join("herald.db")))
        .env_remove("HERALD_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot serve TLS") && err.contains("/nonexistent/herald.crt"), "{err}");
}

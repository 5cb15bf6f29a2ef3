//! TLS and HTTP/2: many streams on one HTTP/2 connection, h2c with prior knowledge, certificate
//! rotation while streams stay open, the handshake deadline, start-up errors for bad files, and
//! the stream rules (slow streams, user limit, Force Logoff, shutdown) on HTTP/2.

use herald_testkit::{spawn_with, tls_connect, write_cert, Backend, H2Client, SseClient, TestApp, WAIT};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server on HTTPS with a fresh `localhost` certificate; returns it and the certificate PEM.
async fn spawn_tls(dir: &Path, tune: impl FnOnce(&mut herald_server::Config)) -> (TestApp, String) {
    let (cert, key, pem) = write_cert(dir, "server");
    let app = spawn_with(Backend::Sqlite, |c| {
        c.tls_cert_file = Some(cert);
        c.tls_key_file = Some(key);
        tune(c);
    })
    .await;
    (app, pem)
}

async fn eventually_connected(h2: &H2Client, user: &str, expected: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, v) = h2.json("GET", &format!("/api/user/sse/connected/{user}"), None).await;
        assert_eq!(status, 200);
        if v == json!(expected) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{user} connected is not {expected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_users_streaming_over_one_http2_connection_each_get_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let (app, pem) = spawn_tls(dir.path(), |_| {}).await;
    let h2 = H2Client::tls(app.addr(), &pem).await;
    let mut streams = Vec::new();
    for i in 1..=20 {
        let mut s = h2.connect(&format!("h2-user-{i:02}")).await;
        s.expect("CONNECTED").await;
        streams.push(s);
    }
    let (status, stats) = h2.json("GET", "/api/user/sse/stats", None).await;
    assert_eq!((status, stats["totalConnections"].as_u64()), (200, Some(20)), "{stats}");
    let ids = [h2.publish("first").await, h2.publish("second").await];
    for s in &mut streams {
        for id in ids {
            s.expect_message(id).await;
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_serves_requests_and_streams_on_a_plain_port() {
    let app = spawn_with(Backend::Sqlite, |_| {}).await;
    let h2 = H2Client::h2c(app.addr()).await;
    let (status, live) = h2.json("GET", "/health/live", None).await;
    assert_eq!((status, live), (200, json!({"status": "UP"})));
    let mut a = h2.connect("user-001").await;
    let mut b = h2.connect("user-002").await;
    a.expect("CONNECTED").await;
    b.expect("CONNECTED").await;
    let id = h2.publish("over h2c").await;
    a.expect_message(id).await;
    b.expect_message(id).await;
    // Errors keep the JSON format on HTTP/2 too.
    let (status, err) = h2.json("GET", "/api/nope", None).await;
    assert_eq!((status, err["path"].as_str()), (404, Some("/api/nope")), "{err}");
    // HTTP/1.1 on the same port is unchanged.
    assert_eq!(app.get("/health/live").await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_to_new_handshakes_while_open_streams_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (app, old_pem) = spawn_tls(dir.path(), |_| {}).await;
    let old = H2Client::tls(app.addr(), &old_pem).await;
    let mut open = old.connect("user-001").await;
    open.expect("CONNECTED").await;

    // Replace the files in place, as a renewal would, and reload as SIGHUP does.
    let (_, _, new_pem) = write_cert(dir.path(), "server");
    assert!(app.reload_handle().reload_tls().expect("reload"), "the server serves TLS");
    let new = H2Client::tls(app.addr(), &new_pem).await;
    assert!(tls_connect(app.addr(), &old_pem, &[b"h2"]).await.is_err(), "the old certificate is gone");

    // A broken file is refused and the certificate in use stays.
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    let err = app.reload_handle().reload_tls().unwrap_err().to_string();
    assert!(err.contains("tls_key_file") && err.contains("server.key"), "{err}");
    H2Client::tls(app.addr(), &new_pem).await;

    let id = new.publish("after rotation").await;
    open.expect_message(id).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_finishes_is_cut_by_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (app, pem) = spawn_tls(dir.path(), |c| c.header_timeout = Duration::from_millis(300)).await;
    let mut idle = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    // The first bytes of a ClientHello record, then nothing.
    idle.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept a stalled handshake open");

    // A finished handshake (ALPN h2) followed by silence is cut too.
    let mut silent = tls_connect(app.addr(), &pem, &[b"h2"]).await.unwrap();
    let read = tokio::time::timeout(WAIT, silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "the server kept a silent TLS connection open: {read:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_stop_the_start_with_a_message_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(dir.path(), "good");
    let (_, other_key, _) = write_cert(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let cases = [
        (dir.path().join("missing.crt"), key.clone(), "missing.crt"),
        (garbage.clone(), key.clone(), "garbage.pem"),
        (cert.clone(), garbage, "garbage.pem"),
        (cert, other_key, "does not belong"),
    ];
    for (cert, key, expected) in cases {
        let db = Backend::Sqlite.fresh_database().await;
        let config = herald_server::Config {
            database_url: db.url.clone(),
            tls_cert_file: Some(cert),
            tls_key_file: Some(key),
            ..herald_server::Config::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let Err(err) = herald_server::start(config, listener).await else {
            panic!("started with a bad certificate ({expected})")
        };
        let message = herald_server::Chain(&err).to_string();
        assert!(message.contains("TLS") && message.contains(expected), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_over_tls_serves_streams_when_the_client_offers_no_h2() {
    let dir = tempfile::tempdir().unwrap();
    let (app, pem) = spawn_tls(dir.path(), |_| {}).await;
    let mut tls = tls_connect(app.addr(), &pem, &[b"http/1.1"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /api/user/sse/connect?userId=user-003 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        while !String::from_utf8_lossy(&seen).contains("event: CONNECTED") {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("CONNECTED in time");
    let head = String::from_utf8_lossy(&seen);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_http2_the_user_limit_force_logoff_and_shutdown_behave_as_on_http1() {
    let dir = tempfile::tempdir().unwrap();
    let (app, pem) = spawn_tls(dir.path(), |c| c.max_connections_per_user = 2).await;
    let h2 = H2Client::tls(app.addr(), &pem).await;
    let mut first = h2.connect("user-004").await;
    let mut second = h2.connect("user-004").await;
    first.expect("CONNECTED").await;
    second.expect("CONNECTED").await;
    let mut third = h2.connect("user-004").await;
    third.expect("CONNECTION_LIMIT_REACHED").await;
    assert!(third.until_end().await.is_empty());

    let mut bystander = h2.connect("user-005").await;
    bystander.expect("CONNECTED").await;
    let body = json!({"senderId": "admin-1", "content": "bye", "targetType": "SELECTED",
        "targetIds": ["user-004"], "category": "Force Logoff"});
    let (status, created) = h2.json("POST", "/api/admin/broadcasts", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    for s in [&mut first, &mut second] {
        s.expect("MESSAGE").await;
        assert!(s.until_end().await.is_empty());
    }
    // The connection and its other stream carry on.
    let id = h2.publish("still here").await;
    bystander.expect_message(id).await;

    let stopping = tokio::spawn(app.stop());
    bystander.expect("SERVER_SHUTDOWN").await;
    assert!(bystander.until_end().await.is_empty());
    tokio::time::timeout(WAIT, stopping).await.expect("shutdown in time").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_http2_a_stream_that_never_reads_is_closed_without_stalling_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (app, pem) = spawn_tls(dir.path(), |c| c.stream_queue = 8).await;
    let h2 = H2Client::tls(app.addr(), &pem).await;
    let mut stuck: SseClient = h2.connect("user-009").await;
    stuck.expect("CONNECTED").await;
    let mut healthy = h2.connect("user-001").await;
    healthy.expect("CONNECTED").await;

    // 40 KB messages: the stuck stream's HTTP/2 window fills, then its queue.
    let big = "\u{1F4E3}".repeat(10_000);
    for _ in 0..120 {
        let id = h2.publish(&big).await;
        healthy.expect_message(id).await;
    }
    eventually_connected(&h2, "user-009", false).await;
    let id = h2.publish("after").await;
    healthy.expect_message(id).await;
    // Once the client reads again, the stream ends with a reset rather than a clean end.
    stuck.until_end().await;
    assert!(stuck.error().is_some(), "the stuck stream was reset");
    app.stop().await;
}

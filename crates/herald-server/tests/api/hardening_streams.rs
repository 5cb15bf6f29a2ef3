//! Connections that hold on to the server (issue 9, defects 1–3): streams that never read their
//! catch-up, bodies that never end, too many connections from one address, and answers sent
//! before the whole request was read.

use herald_testkit::{on_both_backends, spawn_with, Backend, TestApp, WAIT};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn addr(app: &TestApp) -> std::net::SocketAddr {
    app.base.trim_start_matches("http://").parse().expect("address")
}

/// A client that sends a stream request and then never reads, with a small receive buffer.
async fn never_reading(app: &TestApp, user: &str, last_event_id: Option<&str>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr(app)).await.unwrap();
    let resume = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    let head = format!("GET /api/user/sse/connect?userId={user} HTTP/1.1\r\nHost: herald\r\n{resume}\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Publishes `n` broadcasts of 40 KB each to everyone: 6 MB for 150, more than any socket buffers.
async fn publish_big(app: &TestApp, n: usize) {
    let big = "\u{1F4E3}".repeat(10_000);
    for _ in 0..n {
        app.publish(json!({"content": big})).await;
    }
}

async fn open_streams(app: &TestApp) -> i64 {
    app.get_json("/api/user/sse/stats").await["totalConnections"].as_i64().expect("totalConnections")
}

async fn wait_until_no_streams(app: &TestApp, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while open_streams(app).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "{what}: the stream is still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn streams_that_never_read_their_catch_up_are_closed(backend: Backend) {
    let app = spawn_with(backend, |c| c.send_timeout = Duration::from_millis(500)).await;
    publish_big(&app, 150).await;
    for (user, resume, what) in
        [("newcomer-1", None, "pending catch-up"), ("newcomer-2", Some("0"), "replay from the window")]
    {
        let stuck = never_reading(&app, user, resume).await;
        app.eventually(&format!("/api/user/sse/connected/{user}"), |v| v == &json!(true)).await;
        wait_until_no_streams(&app, what).await;
        drop(stuck);
    }
    app.stop().await;

    // A window of ten events: the replay comes from the store's log.
    let app = spawn_with(backend, |c| {
        c.send_timeout = Duration::from_millis(500);
        c.replay_window = 10;
    })
    .await;
    publish_big(&app, 150).await;
    let stuck = never_reading(&app, "newcomer-3", Some("0")).await;
    app.eventually("/api/user/sse/connected/newcomer-3", |v| v == &json!(true)).await;
    wait_until_no_streams(&app, "replay from the store").await;
    drop(stuck);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("herald_streams_closed_slow_total"), "{metrics}");
    app.stop().await;
}

async fn a_reading_client_still_gets_its_whole_catch_up_in_order(backend: Backend) {
    let app = spawn_with(backend, |c| c.replay_window = 10).await;
    let mut ids = Vec::new();
    for i in 0..70 {
        ids.push(herald_testkit::id_of(
            &app.publish(json!({"content": format!("m{i} {}", "x".repeat(4_000))})).await,
        ));
    }
    // Pending (fresh connect) and replay from the store, both paged.
    let mut fresh = app.online("user-001").await;
    let mut seqs = Vec::new();
    for id in &ids {
        seqs.push(fresh.expect_message(*id).await.seq());
    }
    let mut resumed = app.connect_with("user-002", &[("last-event-id", "0")]).await;
    resumed.expect("CONNECTED").await;
    for (id, seq) in ids.iter().zip(&seqs) {
        let ev = resumed.expect_message(*id).await;
        assert_eq!(ev.seq(), *seq, "replay keeps the log positions");
    }
    app.stop().await;
}

on_both_backends!(
    streams_that_never_read_their_catch_up_are_closed,
    a_reading_client_still_gets_its_whole_catch_up_in_order
);

/// Reads one HTTP response until the server closes: (status, headers, body).
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection after answering")
        .expect("the answer arrives intact (no reset)");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not a response: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn error_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("error body is not JSON: {body:?}"));
    v["message"].as_str().expect("message").to_owned()
}

/// The accept loop takes a stream whose head is already there with one read; a client whose head
/// comes in pieces (each its own segment) may be read part-way and goes the long way round, and
/// gets the same stream. (Which part the first read sees is up to timing; the unit tests in
/// `net/raw.rs` split the head at a known place.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_head_sent_in_pieces_still_opens_the_stream() {
    let app = spawn_with(Backend::Sqlite, |_| {}).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.set_nodelay(true).unwrap();
    let head = b"GET /api/user/sse/connect?userId=late-1 HTTP/1.1\r\nHost: herald\r\n\r\n";
    for piece in head.chunks(20) {
        s.write_all(piece).await.unwrap();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("event: CONNECTED") {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.expect("CONNECTED in time").unwrap();
        assert!(n > 0, "closed before CONNECTED: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains(r#""userId":"late-1""#), "{text}");
    app.eventually("/api/user/sse/connected/late-1", |v| v == &json!(true)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_gets_408_and_the_connection_closes() {
    let app = spawn_with(Backend::Sqlite, |c| c.body_timeout = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(
        b"POST /api/admin/broadcasts HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{\"content\"",
    )
    .await
    .unwrap();
    let (status, head, body) = read_response(&mut s).await;
    assert_eq!(status, 408, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(error_message(&body).contains("body_timeout"), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_limit_of_connections() {
    let app = spawn_with(Backend::Sqlite, |c| c.max_connections_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    let mut fourth = TcpStream::connect(addr(&app)).await.unwrap();
    let (status, head, body) = read_response(&mut fourth).await;
    assert_eq!(status, 429, "{head}");
    assert!(head.contains("retry-after"), "{head}");
    assert!(error_message(&body).contains("max_connections_per_ip"), "{body}");
    held.pop();
    // The freed place is taken again (the server notices the close asynchronously).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(b"GET /health/live HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await.unwrap();
        if read_response(&mut s).await.0 == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the closed connection's place was not freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_streams_count_per_forwarded_address() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.max_connections_per_ip = 2;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let stream = |user: &str, client: &str| {
        app.client
            .get(app.url("/api/user/sse/connect"))
            .query(&[("userId", user)])
            .header("x-forwarded-for", client)
            .send()
    };
    let a = stream("user-001", "203.0.113.7").await.unwrap();
    let b = stream("user-002", "203.0.113.7").await.unwrap();
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let refused = stream("user-003", "203.0.113.7").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(
        stream("user-004", "198.51.100.9").await.unwrap().status(),
        200,
        "another client is not affected"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("herald_streams_rejected_total{reason=\"per_ip_connections\"} 1"), "{metrics}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_writes_a_whole_oversized_body_first_still_reads_the_413() {
    let app = spawn_with(Backend::Sqlite, |_| {}).await;
    let body = vec![b'x'; 2 * 1024 * 1024];
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /api/admin/broadcasts HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.expect("the server takes the whole body before closing");
    let (status, _, text) = read_response(&mut s).await;
    assert_eq!(status, 413);
    assert!(error_message(&text).contains("body_limit"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_an_oversized_head_and_a_body_still_reads_the_431() {
    let app = spawn_with(Backend::Sqlite, |_| {}).await;
    for (method, path) in
        [("POST", "/api/admin/broadcasts"), ("GET", "/api/user/sse/connect?userId=user-001")]
    {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: h\r\nX-Filler: {}\r\nContent-Length: 1048576\r\n\r\n",
            "y".repeat(40_000)
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&vec![b'x'; 1024 * 1024]).await.expect("the server takes what follows before closing");
        let (status, head, text) = read_response(&mut s).await;
        assert_eq!(status, 431, "{path}: {head}");
        assert!(error_message(&text).contains("max_header_bytes"), "{text}");
    }
    app.stop().await;
}

//! Stream mechanics: slow clients, heartbeats, disconnect, stats and graceful shutdown.

use herald_testkit::{id_of, on_both_backends, spawn_app, spawn_with, Backend, SseClient, WAIT};
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

async fn a_stream_that_never_reads_is_closed_without_slowing_the_others(backend: Backend) {
    let app = spawn_with(backend, |c| c.stream_queue = 8).await;
    // A client that sends its request and then never reads a byte, with a small receive buffer.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = app.base.trim_start_matches("http://").parse().unwrap();
    let mut stuck = socket.connect(addr).await.unwrap();
    stuck
        .write_all(b"GET /api/user/sse/connect?userId=user-009 HTTP/1.1\r\nHost: herald\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    app.eventually("/api/user/sse/connected/user-009", |v| v == &json!(true)).await;
    let mut healthy = app.online("user-001").await;

    // 40 KB messages: a few hundred fill any socket buffer behind the stuck client.
    let big = "\u{1F4E3}".repeat(10_000);
    let mut sent = Vec::new();
    for _ in 0..150 {
        sent.push(id_of(&app.publish(json!({"content": big})).await));
        if sent.len() % 10 == 0 {
            // The healthy stream keeps up while the stuck one backs up.
            while let Some(id) = sent.first().copied() {
                healthy.expect_message(id).await;
                sent.remove(0);
            }
        }
    }
    for id in sent {
        healthy.expect_message(id).await;
    }
    app.eventually("/api/user/sse/connected/user-009", |v| v == &json!(false)).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("herald_streams_closed_slow_total 1"), "{metrics}");
    drop(stuck);
    app.stop().await;
}

async fn heartbeats_arrive_at_the_configured_interval(backend: Backend) {
    let app = spawn_with(backend, |c| c.heartbeat_interval = Duration::from_millis(200)).await;
    let mut s = app.online("user-001").await;
    let beat = s.next_any().await.expect("heartbeat");
    assert_eq!(beat.event, "HEARTBEAT");
    assert!(beat.json()["timestamp"].is_string());
    assert!(beat.id.is_none(), "heartbeats have no position");
    app.stop().await;
}

async fn disconnect_closes_the_named_stream_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut named = app.connect_with("user-001", &[("connectionId", "tab-1")]).await;
    assert_eq!(named.expect("CONNECTED").await.json()["connectionId"], "tab-1");
    let mut other = app.connect_with("user-001", &[("sessionId", "tab-2")]).await;
    assert_eq!(other.expect("CONNECTED").await.json()["connectionId"], "tab-2");

    let r = app
        .client
        .post(app.url("/api/user/sse/disconnect?userId=user-001&connectionId=tab-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["disconnected"], 1);
    assert!(named.until_end().await.is_empty());

    let form = app
        .client
        .post(app.url("/api/user/sse/disconnect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("userId=user-001&connectionId=tab-2")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert!(other.until_end().await.is_empty());
    app.eventually("/api/user/sse/stats", |v| v["totalConnections"] == 0).await;
    app.stop().await;
}

async fn stats_count_users_and_streams_on_this_node(backend: Backend) {
    let app = spawn_with(backend, |c| c.node_id = Some("node-a".into())).await;
    let _a = app.online("user-001").await;
    let _b = app.online("user-001").await;
    let _c = app.online("user-002").await;
    let stats = app.get_json("/api/user/sse/stats").await;
    assert_eq!(stats["totalConnections"], 3);
    assert_eq!(stats["sseConnectedUsers"], 2);
    assert_eq!(stats["podId"], "node-a");
    assert_eq!(app.get_json("/api/user/sse/connected/user-002").await, json!(true));
    assert_eq!(app.get_json("/api/user/sse/connected/user-003").await, json!(false));
    app.stop().await;
}

async fn graceful_shutdown_tells_every_stream_and_keeps_the_records(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut streams: Vec<SseClient> = Vec::new();
    for u in ["user-001", "user-002", "user-003"] {
        streams.push(app.online(u).await);
    }
    let b = id_of(&app.publish(json!({})).await);
    for s in streams.iter_mut() {
        s.expect_message(b).await;
    }
    let started = tokio::time::Instant::now();
    let app = app.restart_after(|| true).await;
    assert!(started.elapsed() < WAIT, "shutdown took {:?}", started.elapsed());
    for s in streams.iter_mut() {
        let rest = s.until_end().await;
        assert_eq!(rest.last().map(|e| e.event.as_str()), Some("SERVER_SHUTDOWN"), "{rest:?}");
    }
    // The delivery records were flushed before exit: the restarted server counts them.
    assert_eq!(app.stats(b).await["totalDelivered"], 3);
    app.stop().await;
}

async fn health_endpoints_report_live_and_ready(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get_json("/health/live").await["status"], "UP");
    let ready = app.get_json("/health/ready").await;
    assert_eq!(ready, json!({"status": "UP", "database": "UP", "bus": "UP"}));
    let metrics = app.get("/metrics").await;
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(metrics.text().await.unwrap().contains("herald_streams_open 0"));
    let openapi = app.get_json("/api/openapi.json").await;
    assert!(openapi.is_object());
    app.stop().await;
}

on_both_backends!(
    a_stream_that_never_reads_is_closed_without_slowing_the_others,
    heartbeats_arrive_at_the_configured_interval,
    disconnect_closes_the_named_stream_only,
    stats_count_users_and_streams_on_this_node,
    graceful_shutdown_tells_every_stream_and_keeps_the_records,
    health_endpoints_report_live_and_ready,
);

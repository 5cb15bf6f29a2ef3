//! Abuse limits: each answers 429 with `Retry-After` at its threshold and recovers after its
//! window; oversized or slow request heads are cut off; CORS is same-origin unless configured.

use herald_testkit::{spawn_app, spawn_with, Backend, TestApp};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

async fn connect_status(app: &TestApp, user: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(&format!("/api/user/sse/connect?userId={user}")));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

/// Retries `attempt` until it answers `want`, with a deadline.
async fn until_status<F, Fut>(want: u16, attempt: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if attempt().await.status() == want {
            return;
        }
        assert!(Instant::now() < deadline, "never answered {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_per_ip_are_limited_and_recover_after_the_window() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.connects_per_ip_per_minute = 3;
        c.rate_limit_window = Duration::from_secs(1);
    })
    .await;
    let mut open = Vec::new();
    for u in ["user-001", "user-002", "user-003"] {
        let r = connect_status(&app, u, None).await;
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let refused = connect_status(&app, "user-004", None).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, 1, "Retry-After counts the seconds left in the window");
    let body: Value = refused.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("connects"), "{body}");
    until_status(200, || connect_status(&app, "user-004", None)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let limited = |trusted: bool| {
        move |c: &mut herald_server::Config| {
            c.connects_per_ip_per_minute = 1;
            if trusted {
                c.trusted_proxies = vec!["127.0.0.0/8".into()];
            }
        }
    };
    let behind_proxy = spawn_with(Backend::Sqlite, limited(true)).await;
    assert_eq!(connect_status(&behind_proxy, "user-001", Some("203.0.113.1")).await.status(), 200);
    assert_eq!(
        connect_status(&behind_proxy, "user-002", Some("203.0.113.2")).await.status(),
        200,
        "another client"
    );
    assert_eq!(connect_status(&behind_proxy, "user-003", Some("203.0.113.1")).await.status(), 429);
    behind_proxy.stop().await;

    let direct = spawn_with(Backend::Sqlite, limited(false)).await;
    assert_eq!(connect_status(&direct, "user-001", Some("203.0.113.1")).await.status(), 200);
    let spoofed = connect_status(&direct, "user-002", Some("203.0.113.2")).await;
    assert_eq!(spoofed.status(), 429, "an untrusted peer cannot pick its address");
    direct.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_per_admin_are_limited_and_recover_after_the_window() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.broadcasts_per_admin_per_minute = 2;
        c.rate_limit_window = Duration::from_secs(1);
    })
    .await;
    let create =
        || app.post("/api/admin/broadcasts", json!({"senderId": "a", "content": "x", "targetType": "ALL"}));
    assert_eq!(create().await.status(), 201);
    assert_eq!(create().await.status(), 201);
    let refused = create().await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    until_status(201, create).await;
    assert_eq!(
        app.get_json("/api/admin/broadcasts").await.as_array().unwrap().len(),
        3,
        "refused ones were not stored"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let big =
        app.client.get(app.url("/health/live")).header("x-filler", "y".repeat(20_000)).send().await.unwrap();
    assert_eq!(big.status(), 431);
    let mut many = app.client.get(app.url("/health/live"));
    for i in 0..100 {
        many = many.header(format!("x-h{i}"), "1");
    }
    assert_eq!(many.send().await.unwrap().status(), 431);
    assert_eq!(app.get("/health/live").await.status(), 200, "the server is unaffected");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_headers_too_slowly_is_cut_off() {
    let app = spawn_with(Backend::Sqlite, |c| c.header_timeout = Duration::from_millis(500)).await;
    let mut slow = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: herald\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was not closed");
    assert!(started.elapsed() >= Duration::from_millis(400), "closed after {:?}", started.elapsed());
    assert_eq!(app.get("/health/live").await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origins() {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/user/messages"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let app = spawn_with(Backend::Sqlite, |c| {
        c.cors_allowed_origins = vec!["https://app.example".into()];
        c.cors_allow_credentials = true;
    })
    .await;
    let ok = preflight(&app, "https://app.example").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let other = preflight(&app, "https://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    // A stream (answered on the raw socket) carries the headers too: a browser's EventSource
    // from the console's origin may read it.
    let stream = app
        .client
        .get(app.url("/api/user/sse/connect?userId=u1"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["connection"], "close", "answered on the raw socket, not by hyper");
    assert_eq!(stream.headers()["access-control-allow-origin"], "https://app.example");
    drop(stream);
    app.stop().await;

    let default = spawn_app(Backend::Sqlite).await;
    let r = default
        .client
        .get(default.url("/health/live"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"), "same-origin only by default");
    default.stop().await;
}

//! What clients send (issue 9, defects 4–10): NUL and other Unicode in text, arrays where objects
//! belong, errors outside the JSON format, `userId` parameters in JWT mode, HTTP framing rules,
//! and metrics that count what happened.

use herald_server::config::{AuthMode, Secret};
use herald_testkit::{id_of, on_both_backends, spawn_app, spawn_with, token, Backend, TestApp, WAIT};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

async fn status_and_message(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, v["message"].as_str().unwrap_or_default().to_owned())
}

async fn text_with_nul_is_refused_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    for field in ["content", "senderName", "category"] {
        let mut body = json!({"senderId": "admin-1", "content": "hello", "targetType": "ALL"});
        body[field] = json!("nul\u{0}here");
        let (status, message) = status_and_message(app.post("/api/admin/broadcasts", body).await).await;
        assert_eq!(status, 400, "{field}: {message}");
        assert!(message.starts_with(field) && message.contains("NUL"), "{message}");
    }
    app.stop().await;
}

on_both_backends!(text_with_nul_is_refused_naming_the_field);

/// One server per backend for the generated cases (PostgreSQL only when configured).
fn world(backend: Backend) -> Option<&'static (Runtime, TestApp)> {
    static SQLITE: OnceLock<(Runtime, TestApp)> = OnceLock::new();
    static POSTGRES: OnceLock<(Runtime, TestApp)> = OnceLock::new();
    let cell = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres if Backend::postgres_available("generated Unicode") => &POSTGRES,
        Backend::Postgres => return None,
    };
    Some(cell.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let app = rt.block_on(spawn_app(backend));
        (rt, app)
    }))
}

fn awkward_char() -> impl Strategy<Value = char> {
    prop_oneof![
        Just('\u{0}'),
        Just('\u{200F}'),   // right-to-left mark
        Just('\u{202E}'),   // right-to-left override
        Just('\u{1F4E3}'),  // 4 bytes in UTF-8
        Just('\u{10FFFF}'), // the last code point
        Just('\u{FEFF}'),
        Just('\n'),
        any::<char>(),
        proptest::char::range('a', 'z'),
    ]
}

/// `content` as raw JSON text, sometimes with a lone surrogate escape spliced in.
fn content_json() -> impl Strategy<Value = (String, Option<String>)> {
    (proptest::collection::vec(awkward_char(), 1..40), any::<bool>(), any::<bool>()).prop_map(
        |(chars, lone, high)| {
            let text: String = chars.into_iter().collect();
            let json = serde_json::to_string(&text).unwrap();
            if lone {
                let escape = if high { "\\ud83d" } else { "\\udc00" };
                (format!("\"{escape}{}", &json[1..]), None)
            } else {
                (json, Some(text))
            }
        },
    )
}

fn unicode_round_trips(
    backend: Backend,
    (json, text): (String, Option<String>),
) -> Result<(), TestCaseError> {
    let Some((rt, app)) = world(backend) else { return Ok(()) };
    rt.block_on(async {
        let body = format!(
            r#"{{"senderId":"admin-1","targetType":"SELECTED","targetIds":["user-001"],"content":{json}}}"#
        );
        let r = app
            .client
            .post(app.url("/api/admin/broadcasts"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.expect("a JSON answer");
        match text {
            Some(text) if !text.contains('\0') && !text.trim().is_empty() => {
                prop_assert_eq!(status, 201, "{}", v);
                let stored = app.get_json(&format!("/api/admin/broadcasts/{}", id_of(&v))).await;
                prop_assert_eq!(stored["content"].as_str(), Some(text.as_str()));
                let inbox = app.get_json("/api/user/messages?userId=user-001&limit=1").await;
                prop_assert_eq!(inbox[0]["content"].as_str(), Some(text.as_str()));
            }
            Some(_) => {
                prop_assert_eq!(status, 400, "{}", v);
                prop_assert!(v["message"].as_str().unwrap().starts_with("content"), "{}", v);
            }
            None => prop_assert_eq!(status, 400, "a lone surrogate is not valid JSON text: {}", v),
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_unicode_is_stored_exactly_or_refused_on_sqlite(case in content_json()) {
        unicode_round_trips(Backend::Sqlite, case)?;
    }

    #[test]
    fn generated_unicode_is_stored_exactly_or_refused_on_postgres(case in content_json()) {
        unicode_round_trips(Backend::Postgres, case)?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_json_objects() {
    let app = spawn_app(Backend::Sqlite).await;
    let put = app
        .client
        .put(app.url("/api/admin/users/x"))
        .json(&json!([["ADMIN"], ["Payments"]]))
        .send()
        .await
        .unwrap();
    let (status, message) = status_and_message(put).await;
    assert_eq!((status, message.as_str()), (400, "request body: must be a JSON object"));
    let read = app.post("/api/user/messages/read", json!(["user-002", 1])).await;
    assert_eq!(status_and_message(read).await.0, 400);
    assert_eq!(app.get("/api/admin/users/x").await.status(), 404, "nothing was stored");
    app.stop().await;
}

/// Sends raw bytes and reads the whole answer: (status, headers, body).
async fn raw(app: &TestApp, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await.expect("closed").expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not a response: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn assert_json_error(status: u16, head: &str, body: &str, want: u16) -> String {
    assert_eq!(status, want, "{head}\n{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    assert_eq!(v["status"], want);
    v["message"].as_str().expect("message").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_the_json_body() {
    let app = spawn_app(Backend::Sqlite).await;
    let r = app.get("/api/admin/users/%FF%FE").await;
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let (s, h, b) = raw(&app, b"GET /\xFF HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_json_error(s, &h, &b, 400);
    let big = format!(
        "GET /api/user/sse/connect?userId=user-001 HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
        "y".repeat(20_000)
    );
    let (s, h, b) = raw(&app, big.as_bytes()).await;
    assert!(assert_json_error(s, &h, &b, 431).contains("max_header_bytes"));
    app.stop().await;
}

/// A keep-alive client sends a request head and its body in separate writes. When the answer comes
/// before the body was read (415 here; also 401, 403, 413, a bad path), the connection must say
/// it closes: otherwise hyper closes it a moment later, finding the body not there yet, and the
/// client's next request on it is lost ("closed connection without response"). Checked for the
/// first request of a connection (whose head the accept loop reads) and for a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_before_the_body_arrived_closes_the_connection() {
    let app = spawn_app(Backend::Sqlite).await;
    let put =
        "PUT /api/admin/users/x HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n";
    for before in ["", "GET /health/live HTTP/1.1\r\nHost: h\r\n\r\n"] {
        let answers = 1 + before.len().min(1);
        let mut s = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
        s.write_all(format!("{before}{put}").as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&out);
            if text.matches("HTTP/1.1 ").count() == answers && text.ends_with('}') {
                break;
            }
            let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.expect("an answer").unwrap();
            assert!(n > 0, "closed before answering: {text:?}");
            out.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
        let answer = text.rsplit("http/1.1 ").next().unwrap();
        assert!(answer.starts_with("415"), "{text}");
        assert!(answer.contains("\r\nconnection: close\r\n"), "the client is told not to reuse it: {text}");
        s.write_all(b"{}GET /health/live HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await.expect("closed").expect("read");
        assert!(rest.is_empty(), "nothing more is answered: {:?}", String::from_utf8_lossy(&rest));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_http_framing_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let read_all = "POST /api/user/messages/read-all?userId=user-001 HTTP/1.1\r\nHost: a\r\n";
    let cases = [
        ("no Host", "GET /health/live HTTP/1.1\r\n\r\n".to_owned(), true),
        ("two Hosts", "GET /health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_owned(), true),
        ("chunked twice", format!("{read_all}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), true),
        // On a kept-alive connection hyper's parser merges identical lengths (RFC 9110 allows
        // it) and drops a length sent with chunked (closing after the answer, RFC 9112): only
        // the first request of a connection is refused for these.
        ("two lengths", format!("{read_all}Content-Length: 0\r\nContent-Length: 0\r\n\r\n"), false),
        (
            "length and chunked",
            format!("{read_all}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            false,
        ),
    ];
    for (what, request, also_later) in cases {
        let (s, h, b) = raw(&app, request.as_bytes()).await;
        assert!(!assert_json_error(s, &h, &b, 400).is_empty(), "{what}");
        if !also_later {
            continue;
        }
        let second = format!("GET /health/live HTTP/1.1\r\nHost: a\r\n\r\n{request}");
        let mut s = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
        s.write_all(second.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await.expect(what).expect(what);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{what}: {text}");
        assert!(text.contains("HTTP/1.1 400 Bad Request"), "{what}: {text}");
        assert!(text.ends_with('}'), "{what}: the 400 has a JSON body: {text}");
    }
    assert_eq!(raw(&app, b"GET /health/live HTTP/1.0\r\n\r\n").await.0, 200, "HTTP/1.0 may omit Host");
    app.stop().await;
}

const SECRET: &str = "hardening-test-secret-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_jwt_mode_every_user_id_parameter_must_be_the_callers() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.auth = AuthMode::Jwt;
        c.jwt_secret = Some(Secret::new(SECRET));
    })
    .await;
    let me = token(SECRET, "user-004", &["USER"], 600);
    let post = |query: &str, body: Value| {
        app.client
            .post(app.url(&format!("/api/user/messages/read-all{query}")))
            .bearer_auth(&me)
            .json(&body)
            .send()
    };
    assert_eq!(post("?userId=user-005", json!({})).await.unwrap().status(), 403);
    assert_eq!(post("?userId=user-005", json!({"userId": "user-004"})).await.unwrap().status(), 403);
    assert_eq!(post("?userId=bad%20id", json!({})).await.unwrap().status(), 400);
    assert_eq!(post("?userId=user-004", json!({"userId": "user-004"})).await.unwrap().status(), 200);
    assert_eq!(post("", json!({})).await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_catch_up_deliveries_and_refused_connects() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.connects_per_ip_per_minute = 2;
    })
    .await;
    for _ in 0..3 {
        app.publish(json!({"targetType": "ROLE", "targetIds": ["ADMIN"]})).await;
    }
    let mut s = app.online("user-002").await;
    for _ in 0..3 {
        s.expect("MESSAGE").await;
    }
    let mut other = app.online("user-003").await;
    for _ in 0..3 {
        other.expect("MESSAGE").await;
    }
    let refused = app.client.get(app.url("/api/user/sse/connect?userId=user-003")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let m = app.get("/metrics").await;
    assert_eq!(m.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = m.text().await.unwrap();
    assert!(text.contains("herald_message_deliveries_total 6"), "3 to user-002 and 3 to user-003: {text}");
    assert!(text.contains("herald_streams_rejected_total{reason=\"rate_limit\"} 1"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token() {
    let app = spawn_with(Backend::Sqlite, |c| c.metrics_token = Some(Secret::new("scrape-me-please"))).await;
    let (status, _) = status_and_message(app.get("/metrics").await).await;
    assert_eq!(status, 401);
    let wrong = app.client.get(app.url("/metrics")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = app.client.get(app.url("/metrics")).bearer_auth("scrape-me-please").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("herald_streams_open"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_follows_the_auth_mode() {
    let none = spawn_app(Backend::Sqlite).await;
    let doc = none.get_json("/api/openapi.json").await;
    assert!(doc.get("security").is_none(), "auth none declares no security");
    let disconnect = &doc["paths"]["/api/user/sse/disconnect"]["post"]["parameters"];
    assert!(disconnect
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "connectionId" && p["required"] == true));
    none.stop().await;
    let jwt = spawn_with(Backend::Sqlite, |c| {
        c.auth = AuthMode::Jwt;
        c.jwt_secret = Some(Secret::new(SECRET));
    })
    .await;
    let doc = jwt.get_json("/api/openapi.json").await;
    assert!(doc["security"].is_array(), "auth jwt declares bearer security");
    jwt.stop().await;
}

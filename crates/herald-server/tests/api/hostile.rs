//! Hostile input, generated: random bodies, query strings, `Last-Event-ID` values and tokens
//! thrown at a server with `auth = jwt`. Every answer is a client error or a success for the
//! caller's own data; never a 5xx, never a panic, never another user's messages.

use herald_server::config::{AuthMode, Secret};
use herald_testkit::{spawn_with, token, Backend, TestApp};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;
use tokio::runtime::Runtime;

const SECRET: &str = "hostile-test-secret-0123456789abcdefgh";

struct World {
    rt: Runtime,
    app: TestApp,
    alice: String,
    admin: String,
}

/// One server for all cases: user-002 has a private message that user-001 must never see.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let app = rt.block_on(spawn_with(Backend::Sqlite, |c| {
            c.auth = AuthMode::Jwt;
            c.jwt_secret = Some(Secret::new(SECRET));
        }));
        let admin = token(SECRET, "admin-1", &["ADMIN"], 3600);
        rt.block_on(async {
            let r = app
                .client
                .post(app.url("/api/admin/broadcasts"))
                .bearer_auth(&admin)
                .json(&json!({"content": "secret for bob", "targetType": "SELECTED", "targetIds": ["user-002"]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        });
        World { rt, app, alice: token(SECRET, "user-001", &["USER"], 3600), admin }
    })
}

/// Sends a request and checks the universal rules; `as_user` requests must never show
/// user-002's message. Returns (status, body text).
fn send(req: reqwest::RequestBuilder, as_user: bool) -> (u16, String) {
    let w = world();
    w.rt.block_on(async {
        let r = req.send().await.expect("the server answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        assert!(status < 500, "server error {status}: {text}");
        if status >= 400 && status != 431 {
            let body: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is not JSON: {text}"));
            assert!(body["message"].is_string(), "{text}");
        }
        assert!(!as_user || !text.contains("secret for bob"), "user-002's message leaked: {text}");
        (status, text)
    })
}

fn json_ish() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,200}",
        Just("{}".to_owned()),
        Just("null".to_owned()),
        Just("[]".to_owned()),
        ("[a-zA-Z]{1,12}", "\\PC{0,30}").prop_map(|(k, v)| format!("{{\"{k}\": \"{v}\"}}")),
        (any::<i64>(), "\\PC{0,20}")
            .prop_map(|(n, s)| format!("{{\"userId\": \"{s}\", \"broadcastId\": {n}}}")),
        (any::<i32>(), "\\PC{0,20}").prop_map(|(n, s)| format!(
            "{{\"content\": \"{s}\", \"targetType\": \"{s}\", \"targetIds\": [{n}], \"priority\": {n}}}"
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bodies_get_client_errors(body in json_ish(), route in 0usize..5) {
        let w = world();
        let (path, token) = [
            ("/api/user/messages/read", &w.alice),
            ("/api/user/messages/read-all", &w.alice),
            ("/api/user/messages/ack-visibility", &w.alice),
            ("/api/admin/broadcasts", &w.admin),
            ("/api/admin/users/user-009", &w.admin),
        ][route];
        let method = if route == 4 { reqwest::Method::PUT } else { reqwest::Method::POST };
        let req = w.app.client.request(method, w.app.url(path)).bearer_auth(token)
            .header("content-type", "application/json").body(body);
        send(req, route < 3);
    }

    #[test]
    fn random_query_strings_never_reach_other_users(query in "[a-zA-Z0-9_=&%.:@-]{0,80}", user in "user-00[0-9]", route in 0usize..4) {
        let w = world();
        let path = ["/api/user/messages", "/api/user/messages/unread-count", "/api/admin/broadcasts", "/api/user/sse/stats"][route];
        let url = format!("{}?{query}&userId={user}", w.app.url(path));
        let token = if route == 2 { &w.admin } else { &w.alice };
        let (status, text) = send(w.app.client.get(url).bearer_auth(token), route != 2);
        if route == 0 && status == 200 {
            let items: Value = serde_json::from_str(&text).unwrap();
            prop_assert!(items.as_array().unwrap().iter().all(|m| m["userId"] == "user-001"), "{text}");
        }
    }

    #[test]
    fn random_last_event_ids_open_a_stream_or_fail_cleanly(id in prop_oneof!["\\PC{0,30}", any::<i64>().prop_map(|n| n.to_string())]) {
        let w = world();
        let req = w.app.client.get(w.app.url("/api/user/sse/connect")).bearer_auth(&w.alice);
        let req = match reqwest::header::HeaderValue::from_str(&id) {
            Ok(v) => req.header("last-event-id", v),
            Err(_) => req.query(&[("lastEventId", id.as_str())]),
        };
        let status = w.rt.block_on(async {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let mut body = r.bytes_stream();
            if status == 200 {
                use futures::StreamExt;
                let first = tokio::time::timeout(std::time::Duration::from_secs(5), body.next()).await.unwrap();
                let text = String::from_utf8(first.unwrap().unwrap().to_vec()).unwrap();
                assert!(text.contains("event: CONNECTED"), "{text}");
                assert!(!text.contains("secret for bob"));
            }
            status
        });
        prop_assert!(status == 200 || status == 429, "status {status}");
    }

    #[test]
    fn random_and_forged_tokens_get_401(kind in 0usize..7, noise in "[A-Za-z0-9._-]{0,300}") {
        let w = world();
        let t = match kind {
            0 => noise.clone(),
            1 => token(SECRET, "user-002", &["ADMIN"], -120),
            2 => token("a-different-secret-a-different-secret!", "user-002", &["ADMIN"], 600),
            3 => format!("eyJhbGciOiJub25lIn0.{}.", noise),
            4 => "A".repeat(9_000),
            5 => format!("{}.{}.{}", noise, noise, noise),
            _ => format!("{}x", token(SECRET, "user-002", &["ADMIN"], 600)),
        };
        let (status, _) = send(w.app.client.get(w.app.url("/api/user/messages")).bearer_auth(t), true);
        prop_assert_eq!(status, 401);
    }
}

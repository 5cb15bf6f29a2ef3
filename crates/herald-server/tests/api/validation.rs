//! Bad input: every malformed request gets the right 4xx, in the JSON error format, with a message
//! that names the problem, and nothing is stored.

use herald_domain::Timestamp;
use herald_testkit::{on_both_backends, spawn_app, Backend};
use serde_json::{json, Value};

struct Case {
    method: &'static str,
    path: String,
    body: Option<String>,
    content_type: &'static str,
    status: u16,
    says: &'static str,
}

fn case(method: &'static str, path: &str, body: Option<Value>, status: u16, says: &'static str) -> Case {
    Case {
        method,
        path: path.into(),
        body: body.map(|b| b.to_string()),
        content_type: "application/json",
        status,
        says,
    }
}

fn broadcast(extra: Value) -> Value {
    let mut b = json!({"senderId": "admin-1", "senderName": "Admin", "content": "hi", "targetType": "ALL"});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn cases() -> Vec<Case> {
    let mut cases = create_cases();
    cases.extend(body_cases());
    cases.extend(admin_cases());
    cases.extend(user_cases());
    cases
}

/// Bad bodies for `POST /api/admin/broadcasts`.
fn create_cases() -> Vec<Case> {
    let past = Timestamp::now().plus_millis(-60_000).to_rfc3339();
    let soon = Timestamp::now().plus_millis(60_000).to_rfc3339();
    let create = "/api/admin/broadcasts";
    vec![
        case("POST", create, Some(broadcast(json!({"content": ""}))), 400, "content"),
        case("POST", create, Some(broadcast(json!({"content": "x".repeat(10_001)}))), 400, "at most 10000"),
        case("POST", create, Some(broadcast(json!({"content": 42}))), 400, "content"),
        case(
            "POST",
            create,
            Some(json!({"senderId": "a", "targetType": "ALL"})),
            400,
            "content: is required",
        ),
        case("POST", create, Some(broadcast(json!({"senderId": "bad id!"}))), 400, "senderId"),
        case("POST", create, Some(broadcast(json!({"targetType": "EVERYONE"}))), 400, "targetType"),
        case("POST", create, Some(broadcast(json!({"targetType": "ROLE"}))), 400, "targetIds"),
        case(
            "POST",
            create,
            Some(broadcast(json!({"targetIds": ["user-001"]}))),
            400,
            "must be empty when targetType is ALL",
        ),
        case(
            "POST",
            create,
            Some(broadcast(json!({"targetType": "SELECTED", "targetIds": ["ok", ""]}))),
            400,
            "targetIds[1]",
        ),
        case(
            "POST",
            create,
            Some(broadcast(json!({"targetType": "SELECTED", "targetIds": "user-001"}))),
            400,
            "targetIds",
        ),
        case("POST", create, Some(broadcast(json!({"priority": "CRITICAL"}))), 400, "priority"),
        case("POST", create, Some(broadcast(json!({"category": "c".repeat(101)}))), 400, "category"),
        case("POST", create, Some(broadcast(json!({"scheduledAt": "next tuesday"}))), 400, "scheduledAt"),
        case(
            "POST",
            create,
            Some(broadcast(json!({"expiresAt": past}))),
            400,
            "expiresAt: is already in the past",
        ),
        case(
            "POST",
            create,
            Some(broadcast(json!({"scheduledAt": soon, "expiresAt": soon}))),
            400,
            "after scheduledAt",
        ),
        case("POST", create, Some(broadcast(json!({"fireAndForget": "yes"}))), 400, "fireAndForget"),
    ]
}

/// Bodies that are not what a create takes at all: not an object, not JSON, too large.
fn body_cases() -> Vec<Case> {
    let create = "/api/admin/broadcasts";
    vec![
        case("POST", create, Some(json!([1, 2])), 400, "must be a JSON object"),
        Case { body: Some("{\"content\": ".into()), ..case("POST", create, None, 400, "not valid JSON") },
        Case {
            content_type: "text/plain",
            ..case("POST", create, Some(broadcast(json!({}))), 415, "Content-Type")
        },
        Case {
            body: Some(format!("{{\"content\": \"{}\"}}", "x".repeat(70_000))),
            ..case("POST", create, None, 413, "body_limit")
        },
    ]
}

/// Bad ids, filters and pages on the admin routes.
fn admin_cases() -> Vec<Case> {
    vec![
        case("GET", "/api/admin/broadcasts/abc", None, 400, "not a broadcast id"),
        case("GET", "/api/admin/broadcasts/-3", None, 400, "not a broadcast id"),
        case("GET", "/api/admin/broadcasts/999", None, 404, "999"),
        case("GET", "/api/admin/broadcasts/999/stats", None, 404, "999"),
        case("DELETE", "/api/admin/broadcasts/999", None, 404, "999"),
        case("GET", "/api/admin/broadcasts?filter=recent", None, 400, "filter"),
        case("GET", "/api/admin/broadcasts?limit=0", None, 400, "limit"),
        case("GET", "/api/admin/broadcasts?limit=many", None, 400, "limit"),
        case("GET", "/api/admin/broadcasts?before=x", None, 400, "before"),
        case("PUT", "/api/admin/users/user-001", Some(json!({"roles": "ADMIN"})), 400, "roles"),
        case("PUT", "/api/admin/users/user-001", Some(json!({"roles": ["has space"]})), 400, "roles[0]"),
        case("PUT", "/api/admin/users/bad%20id", Some(json!({"roles": []})), 400, "userId"),
        case("DELETE", "/api/admin/users/nobody", None, 404, "nobody"),
        case("GET", "/api/nothing-here", None, 404, "no route"),
        case("PATCH", "/api/admin/broadcasts", None, 405, "PATCH"),
    ]
}

/// Bad users, ids and states on the user routes. Broadcast 1 targets user-002 only, broadcast 2
/// is scheduled for later (see the test).
fn user_cases() -> Vec<Case> {
    let scheduled = json!({"userId": "user-002", "broadcastId": 2});
    vec![
        case("GET", "/api/user/messages", None, 400, "userId: is required"),
        case("GET", "/api/user/messages?userId=", None, 400, "userId"),
        case("GET", "/api/user/messages?userId=user-001&limit=100000", None, 400, "limit"),
        case(
            "POST",
            "/api/user/messages/read",
            Some(json!({"userId": "user-001"})),
            400,
            "broadcastId: is required",
        ),
        case(
            "POST",
            "/api/user/messages/read",
            Some(json!({"userId": "user-001", "broadcastId": "x1"})),
            400,
            "broadcastId",
        ),
        case(
            "POST",
            "/api/user/messages/read",
            Some(json!({"userId": "user-001", "broadcastId": 999})),
            404,
            "999",
        ),
        case("POST", "/api/user/messages/read", Some(json!({"broadcastId": 1})), 400, "userId"),
        case("POST", "/api/user/messages/read-all", Some(json!({})), 400, "userId"),
        case(
            "POST",
            "/api/user/messages/ack-visibility",
            Some(json!({"userId": "u", "broadcastId": 0})),
            400,
            "broadcastId",
        ),
        case("POST", "/api/user/sse/disconnect?userId=user-001", None, 400, "connectionId"),
        case("GET", "/api/user/sse/connect", None, 400, "userId: is required"),
        case("GET", "/api/user/sse/connect?userId=user-001&connectionId=a%20b", None, 400, "connectionId"),
        case("GET", "/api/user/sse/connected/bad%20id", None, 400, "userId"),
        case(
            "POST",
            "/api/user/messages/read",
            Some(json!({"userId": "user-001", "broadcastId": 1})),
            404,
            "not addressed",
        ),
        case("POST", "/api/user/messages/read", Some(scheduled.clone()), 409, "scheduled"),
        case("POST", "/api/user/messages/ack-visibility", Some(scheduled), 409, "scheduled"),
        case("GET", "/api/user/sse/connect?userId=user-001&sessionId=a%20b", None, 400, "sessionId"),
    ]
}

async fn every_malformed_request_gets_the_right_4xx_with_a_useful_message(backend: Backend) {
    let app = spawn_app(backend).await;
    // Broadcast 1 targets user-002 only, so user-001 reading it is a 404.
    app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-002"]})).await;
    let later = Timestamp::now().plus_millis(3_600_000).to_rfc3339();
    app.publish(json!({"targetType": "SELECTED", "targetIds": ["user-002"], "scheduledAt": later})).await;
    for c in cases() {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut req = app.client.request(method, app.url(&c.path));
        if let Some(body) = c.body.clone() {
            req = req.header("content-type", c.content_type).body(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value =
            resp.json().await.unwrap_or_else(|e| panic!("{} {}: body is not JSON ({e})", c.method, c.path));
        assert_eq!(status, c.status, "{} {}: {body}", c.method, c.path);
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(c.says),
            "{} {}: message {message:?} should mention {:?}",
            c.method,
            c.path,
            c.says
        );
        assert_eq!(body["status"], c.status);
        assert!(body["error"].is_string() && body["timestamp"].is_string());
        assert_eq!(body["path"], c.path.split('?').next().unwrap(), "{body}");
    }
    let all = app.get_json("/api/admin/broadcasts").await;
    assert_eq!(all.as_array().unwrap().len(), 2, "no rejected request stored anything");
    app.stop().await;
}

async fn unknown_fields_and_old_api_fields_are_accepted_and_ignored(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent_correlation = "11111111-2222-3333-4444-555555555555";
    let b =
        app.publish(json!({"isImmediate": true, "correlationId": sent_correlation, "somethingNew": 1})).await;
    assert_ne!(b["correlationId"], sent_correlation, "the correlation id is always server-assigned");
    assert_eq!(b["priority"], "NORMAL");
    assert_eq!(b["category"], "GENERAL");
    app.stop().await;
}

on_both_backends!(
    every_malformed_request_gets_the_right_4xx_with_a_useful_message,
    unknown_fields_and_old_api_fields_are_accepted_and_ignored,
);

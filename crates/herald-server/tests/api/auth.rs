//! Authentication and authorization with `auth = jwt`: no user reaches another's messages, admins
//! need role ADMIN, tokens come from header, query or cookie, and bad tokens get 401.

use herald_domain::Timestamp;
use herald_server::config::{AuthMode, Secret};
use herald_testkit::{id_of, spawn_with, token_with, Backend, SseClient, TestApp};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "a-test-secret-that-is-long-enough-0123";
const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "herald";

async fn jwt_app() -> TestApp {
    spawn_with(Backend::Sqlite, |c| {
        c.auth = AuthMode::Jwt;
        c.jwt_secret = Some(Secret::new(SECRET));
        c.jwt_issuer = Some(ISSUER.into());
        c.jwt_audience = Some(AUDIENCE.into());
        c.jwt_leeway = Duration::ZERO;
    })
    .await
}

fn now_secs() -> i64 {
    Timestamp::now().millis() / 1000
}

fn claims(sub: &str, roles: &[&str], ttl: i64) -> Value {
    json!({"sub": sub, "roles": roles, "iss": ISSUER, "aud": AUDIENCE, "exp": now_secs() + ttl, "iat": now_secs()})
}

fn sign(claims: &Value) -> String {
    token_with(SECRET, claims)
}

fn token(sub: &str, roles: &[&str]) -> String {
    sign(&claims(sub, roles, 3600))
}

async fn status(req: reqwest::RequestBuilder) -> StatusCode {
    req.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_user_reaches_another_users_stream_inbox_or_messages() {
    let app = jwt_app().await;
    let admin = token("admin-1", &["ADMIN"]);
    let (alice, bob) = (token("user-001", &["USER"]), token("user-002", &["USER"]));
    let for_bob = app
        .client
        .post(app.url("/api/admin/broadcasts"))
        .bearer_auth(&admin)
        .json(&json!({"content": "for bob", "targetType": "SELECTED", "targetIds": ["user-002"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(for_bob.status(), 201);
    let b: Value = for_bob.json().await.unwrap();
    assert_eq!(b["senderId"], "admin-1", "the sender defaults to the admin's subject");
    let id = id_of(&b);

    let c = &app.client;
    let forbidden = [
        c.get(app.url("/api/user/sse/connect?userId=user-002")).bearer_auth(&alice),
        c.get(app.url("/api/user/messages?userId=user-002")).bearer_auth(&alice),
        c.get(app.url("/api/user/messages/unread-count?userId=user-002")).bearer_auth(&alice),
        c.post(app.url("/api/user/messages/read"))
            .bearer_auth(&alice)
            .json(&json!({"userId": "user-002", "broadcastId": id})),
        c.post(app.url("/api/user/messages/read-all"))
            .bearer_auth(&alice)
            .json(&json!({"userId": "user-002"})),
        c.post(app.url("/api/user/sse/disconnect?userId=user-002&connectionId=x")).bearer_auth(&alice),
        c.get(app.url("/api/user/sse/connected/user-002")).bearer_auth(&alice),
        c.post(app.url("/api/admin/broadcasts"))
            .bearer_auth(&alice)
            .json(&json!({"content": "x", "targetType": "ALL"})),
        c.get(app.url("/api/admin/broadcasts")).bearer_auth(&alice),
        c.put(app.url("/api/admin/users/user-001")).bearer_auth(&alice).json(&json!({"roles": ["ADMIN"]})),
    ];
    for req in forbidden {
        let r = req.send().await.unwrap();
        let url = r.url().path().to_owned();
        assert_eq!(r.status(), 403, "{url}");
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    let own =
        c.post(app.url("/api/user/messages/read")).bearer_auth(&alice).json(&json!({"broadcastId": id}));
    assert_eq!(status(own).await, 404, "alice cannot read a message not addressed to her");

    let anonymous = c.get(app.url("/api/user/messages")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], r#"Bearer realm="herald""#);

    let inbox: Value =
        c.get(app.url("/api/user/messages")).bearer_auth(&bob).send().await.unwrap().json().await.unwrap();
    assert_eq!(inbox[0]["broadcastId"], id, "bob's own inbox, no userId needed");
    assert_eq!(inbox[0]["userId"], "user-002");
    let alice_inbox: Value =
        c.get(app.url("/api/user/messages")).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    assert_eq!(alice_inbox, json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_taken_from_the_header_the_query_or_a_cookie() {
    let app = jwt_app().await;
    let t = token("user-003", &[]);
    let via_query =
        app.client.get(app.url(&format!("/api/user/sse/connect?access_token={t}"))).send().await.unwrap();
    assert_eq!(via_query.status(), 200);
    let mut stream = SseClient::new(via_query);
    assert_eq!(stream.expect("CONNECTED").await.json()["userId"], "user-003");
    let via_cookie = app
        .client
        .get(app.url("/api/user/messages"))
        .header("cookie", format!("theme=dark; herald_token={t}"));
    assert_eq!(status(via_cookie).await, 200);
    let via_header = app.client.get(app.url("/api/user/messages/unread-count")).bearer_auth(&t);
    assert_eq!(status(via_header).await, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_with_a_challenge() {
    let app = jwt_app().await;
    let b64 = |v: &Value| {
        use std::fmt::Write;
        // Unpadded base64url without a dependency: enough for the alg-none token below.
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = v.to_string().into_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                let _ = write!(out, "{}", A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    };
    let other_key = EncodingKey::from_secret(b"another-secret-another-secret-another!");
    let mut wrong_aud = claims("user-001", &[], 600);
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims("user-001", &[], 600);
    wrong_iss["iss"] = json!("https://evil.test");
    let mut not_yet = claims("user-001", &[], 600);
    not_yet["nbf"] = json!(now_secs() + 300);
    let mut bad_sub = claims("user 001", &[], 600);
    bad_sub["sub"] = json!("user 001");
    let cases = [
        ("expired", sign(&claims("user-001", &[], -60))),
        (
            "wrong key",
            encode(&Header::new(Algorithm::HS256), &claims("user-001", &[], 600), &other_key).unwrap(),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims("user-001", &["ADMIN"], 600))
            ),
        ),
        ("wrong audience", sign(&wrong_aud)),
        ("wrong issuer", sign(&wrong_iss)),
        ("not yet valid", sign(&not_yet)),
        ("bad subject", sign(&bad_sub)),
        ("malformed", "not.a.token".to_owned()),
        ("huge", "x".repeat(10_000)),
    ];
    for (what, t) in cases {
        let r = app.client.get(app.url("/api/user/messages")).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains(r#"error="invalid_token""#), "{what}: {challenge}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], 401, "{what}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_closes_when_its_token_expires() {
    let app = jwt_app().await;
    let exp = now_secs() + 2;
    let mut c = claims("user-004", &[], 0);
    c["exp"] = json!(exp);
    let resp = app.client.get(app.url("/api/user/sse/connect")).bearer_auth(sign(&c)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = SseClient::new(resp);
    stream.expect("CONNECTED").await;
    let ev = stream.expect("TOKEN_EXPIRED").await;
    assert!(Timestamp::now().millis() >= exp * 1000, "closed before the token expired");
    assert!(ev.json()["message"].as_str().unwrap().contains("expired"));
    assert!(stream.until_end().await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_claims_update_the_directory_on_connect() {
    let app = jwt_app().await;
    let admin = token("admin-1", &["ADMIN"]);
    let user = sign(&json!({
        "sub": "user-050", "roles": ["AUDITOR"], "products": "Payments Analytics",
        "iss": ISSUER, "aud": AUDIENCE, "exp": now_secs() + 600,
    }));
    let resp = app.client.get(app.url("/api/user/sse/connect")).bearer_auth(&user).send().await.unwrap();
    let mut stream = SseClient::new(resp);
    stream.expect("CONNECTED").await;
    let stored: Value = app
        .client
        .get(app.url("/api/admin/users/user-050"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["roles"], json!(["AUDITOR"]));
    assert_eq!(stored["products"], json!(["Analytics", "Payments"]));
    let r = app
        .client
        .post(app.url("/api/admin/broadcasts"))
        .bearer_auth(&admin)
        .json(&json!({"content": "audit", "targetType": "ROLE", "targetIds": ["AUDITOR"]}))
        .send()
        .await
        .unwrap();
    let id = id_of(&r.json::<Value>().await.unwrap());
    stream.expect_message(id).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_verify_against_a_pem_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = (dir.path().join("ec.pem"), dir.path().join("ec.pub.pem"));
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).output().expect("openssl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        private.to_str().unwrap(),
    ]);
    openssl(&["pkey", "-in", private.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    let app = spawn_with(Backend::Sqlite, |c| {
        c.auth = AuthMode::Jwt;
        c.jwt_public_key_file = Some(public.clone());
    })
    .await;
    let key = EncodingKey::from_ec_pem(&std::fs::read(&private).unwrap()).unwrap();
    let c = json!({"sub": "user-001", "exp": now_secs() + 600});
    let good = encode(&Header::new(Algorithm::ES256), &c, &key).unwrap();
    assert_eq!(status(app.client.get(app.url("/api/user/messages")).bearer_auth(&good)).await, 200);
    let hs = encode(&Header::new(Algorithm::HS256), &c, &EncodingKey::from_secret(b"guess")).unwrap();
    assert_eq!(
        status(app.client.get(app.url("/api/user/messages")).bearer_auth(&hs)).await,
        401,
        "alg confusion"
    );
    app.stop().await;
}

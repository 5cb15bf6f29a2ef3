//! Security behaviour of the `herald` binary: `auth = none` stays on loopback, `herald token` mints
//! tokens the server accepts, a JWKS key rotation is picked up on SIGHUP, and query-string tokens
//! never reach the logs.

use crate::support::{serve, WAIT};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &str = "process-test-secret-0123456789abcdef";

fn herald(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald")).args(args).env_remove("HERALD_CONFIG").output().unwrap()
}

#[test]
fn auth_none_refuses_a_non_loopback_listen_address_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("h.db").display());
    let out = herald(&["serve", "--listen", "0.0.0.0:0", "--database-url", &db]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback") && err.contains("--insecure-allow-remote"), "{err}");

    let server = serve(&db, &["--listen", "0.0.0.0:0", "--insecure-allow-remote"]);
    let warned = server.startup.iter().any(|l| l.contains("WARN") && l.contains("auth = none"));
    assert!(warned, "a warning is logged: {:?}", server.startup);
}

fn rsa_key(dir: &Path, name: &str) -> EncodingKey {
    let path = dir.join(name);
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&path)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    EncodingKey::from_rsa_pem(&std::fs::read(path).unwrap()).unwrap()
}

fn write_jwks(path: &Path, keys: &[(&str, &EncodingKey)]) {
    let keys = keys
        .iter()
        .map(|(kid, key)| {
            let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256).unwrap();
            jwk.common.key_id = Some((*kid).to_owned());
            jwk
        })
        .collect();
    std::fs::write(path, serde_json::to_string(&JwkSet { keys }).unwrap()).unwrap();
}

fn rs256(kid: &str, key: &EncodingKey) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(&header, &json!({"sub": "user-001", "exp": exp}), key).unwrap()
}

#[tokio::test]
async fn a_jwks_key_rotation_is_picked_up_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (rsa_key(dir.path(), "old.pem"), rsa_key(dir.path(), "new.pem"));
    let jwks = dir.path().join("jwks.json");
    write_jwks(&jwks, &[("k1", &old)]);
    let db = format!("sqlite://{}", dir.path().join("h.db").display());
    let server = serve(&db, &["--auth", "jwt", "--jwt-jwks-file", jwks.to_str().unwrap()]);
    let client = reqwest::Client::new();
    let inbox =
        |token: String| client.get(format!("{}/api/user/messages", server.base)).bearer_auth(token).send();
    assert_eq!(inbox(rs256("k1", &old)).await.unwrap().status(), 200);
    assert_eq!(inbox(rs256("k2", &new)).await.unwrap().status(), 401, "not rotated in yet");

    write_jwks(&jwks, &[("k2", &new)]);
    server.signal("-HUP");
    let deadline = Instant::now() + WAIT;
    while inbox(rs256("k2", &new)).await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "the new key was never picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inbox(rs256("k1", &old)).await.unwrap().status(), 401, "the retired key is refused");

    std::fs::write(&jwks, "not json").unwrap();
    server.signal("-HUP");
    let deadline = Instant::now() + WAIT;
    while !server.logs.try_iter().any(|l| l.contains("reloading the JWT keys failed")) {
        assert!(Instant::now() < deadline, "a broken key file is reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inbox(rs256("k2", &new)).await.unwrap().status(), 200, "a broken file keeps the keys in use");
}

#[tokio::test]
async fn herald_token_mints_a_token_the_server_accepts_and_query_tokens_stay_out_of_the_logs() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["token", "--sub", "user-002", "--roles", "ADMIN,USER", "--ttl", "10m"])
        .env("HERALD_JWT_SECRET", SECRET)
        .env_remove("HERALD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.matches('.').count(), 2, "{token}");

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("h.db").display());
    let server = serve(&db, &["--auth", "jwt", "--jwt-secret", SECRET]);
    let client = reqwest::Client::new();
    let body = json!({"content": "from a minted token", "targetType": "ALL"});
    let created = client
        .post(format!("{}/api/admin/broadcasts", server.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "the minted token carries role ADMIN");
    let stream = client
        .get(format!("{}/api/user/sse/connect?access_token={token}&lastEventId=abc", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let bad =
        client.get(format!("{}/api/user/messages?access_token={token}x", server.base)).send().await.unwrap();
    assert_eq!(bad.status(), 401);
    drop(stream);
    server.signal("-TERM");
    let deadline = Instant::now() + WAIT;
    let mut logs = Vec::new();
    while !logs.iter().any(|l: &String| l.contains("herald stopped")) {
        assert!(Instant::now() < deadline, "no shutdown log");
        logs.extend(server.logs.try_iter());
        std::thread::sleep(Duration::from_millis(20));
    }
    let signature = token.rsplit('.').next().unwrap();
    assert!(logs.iter().all(|l| !l.contains(signature)), "a token reached the logs");
}

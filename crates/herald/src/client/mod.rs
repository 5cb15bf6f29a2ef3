//! The command-line client: `publish`, `tail`, `users` and `broadcasts` talk to a running Herald
//! over its HTTP API. This module owns what they share: the `--url` / `--token` / `--json`
//! options, the HTTP client, and how a failure is told to the user (the server's own `message`
//! with the status, or which URL could not be reached).
//!
//! Plain HTTP only: the workspace builds `reqwest` without TLS, and Herald itself serves plain
//! HTTP (TLS ends at a proxy in front of it).

pub mod broadcasts;
pub mod publish;
mod sse;
pub mod tail;
mod text;
mod userfile;
pub mod users;

use anyhow::Context;
use clap::Args;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// How long an API call (not a stream) may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options every client subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the Herald server
    #[arg(long, global = true, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token for a server with auth = jwt (sent as `Authorization: Bearer`)
    #[arg(long, global = true, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why a call failed, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer at all: refused, timed out, name not resolved.
    #[error("cannot reach the Herald server at {url} ({cause})")]
    Unreachable { url: String, cause: String },
    /// The server answered with an error status; `message` is its JSON error's `message`.
    #[error("server answered {status}: {message}")]
    Status { status: StatusCode, message: String },
}

impl ApiError {
    /// A 4xx about the request itself (not about who is asking): the input was refused.
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Status { status, .. }
            if status.is_client_error() && !matches!(status.as_u16(), 401 | 403 | 429))
    }
}

/// A Herald server reached over HTTP, with the caller's token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .context("cannot set up the HTTP client")?;
        let base = args.url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            anyhow::bail!("--url: '{}' is not an http:// URL", args.url);
        }
        Ok(Self { http, base, token: args.token.clone().filter(|t| !t.trim().is_empty()) })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// A request to `path` (which starts with `/`) carrying the token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => rb.bearer_auth(token),
            None => rb,
        }
    }

    /// Sends an API call: an error status becomes [`ApiError::Status`].
    pub async fn call(&self, rb: RequestBuilder) -> Result<Response, ApiError> {
        let resp = self.send(rb.timeout(REQUEST_TIMEOUT)).await?;
        check(resp).await
    }

    /// Sends without a time limit on the response (streams) and without checking the status.
    pub async fn send(&self, rb: RequestBuilder) -> Result<Response, ApiError> {
        rb.send().await.map_err(|e| self.unreachable(&e))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.call(self.request(Method::GET, path)).await?;
        resp.json().await.with_context(|| format!("the answer to GET {path} is not the expected JSON"))
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let resp = self.call(self.request(Method::POST, path).json(body)).await?;
        self.body_json(resp).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let resp = self.call(self.request(Method::PUT, path).json(body)).await?;
        self.body_json(resp).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.call(self.request(Method::DELETE, path)).await.map(drop)
    }

    async fn body_json(&self, resp: Response) -> Result<Value, ApiError> {
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Status {
            status: StatusCode::OK,
            message: format!("the answer is not JSON ({e})"),
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> ApiError {
        ApiError::Unreachable { url: self.base.clone(), cause: root_cause(e) }
    }
}

/// The innermost cause ("Connection refused (os error 111)"), which says more than reqwest's
/// "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.to_string().contains("timed out") || cause.to_string().contains("timed out") {
        return "timed out".to_owned();
    }
    cause.to_string()
}

/// Turns an error status into [`ApiError::Status`] with the server's `message`.
pub async fn check(resp: Response) -> Result<Response, ApiError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = resp.text().await.unwrap_or_default();
    let mut message = error_message(&body).unwrap_or_else(|| "(no message)".to_owned());
    if let Some(secs) = retry_after {
        message.push_str(&format!(" (retry after {secs} s)"));
    }
    Err(ApiError::Status { status, message })
}

/// The `message` of Herald's JSON error body, or the body itself when it is short text.
fn error_message(body: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return Some(m.to_owned());
        }
    }
    let text = body.trim();
    (!text.is_empty()).then(|| text.chars().take(300).collect())
}

/// Prints `value` as one line of JSON on standard output.
pub fn print_json(value: &Value) {
    println!("{value}");
}

/// Prints each entry of the response's `warnings` to standard error.
pub fn print_warnings(response: &Value) {
    for w in warnings(response) {
        eprintln!("warning: {w}");
    }
}

/// The texts of a `warnings` array: strings, or objects with a `message`.
fn warnings(response: &Value) -> Vec<String> {
    let Some(list) = response.get("warnings").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .map(|w| match w.as_str().or_else(|| w.get("message").and_then(Value::as_str)) {
            Some(text) => text.to_owned(),
            None => w.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_message_is_taken_from_its_json_error() {
        let body =
            r#"{"timestamp":"t","status":409,"error":"Conflict","message":"cannot cancel: x","path":"/p"}"#;
        assert_eq!(error_message(body).as_deref(), Some("cannot cancel: x"));
        assert_eq!(error_message("  bad gateway \n").as_deref(), Some("bad gateway"));
        assert_eq!(error_message(""), None);
    }

    #[test]
    fn warnings_are_read_as_strings_or_objects_with_a_message() {
        let v = serde_json::json!({"warnings": ["empty audience", {"code": "X", "message": "m"}, 3]});
        assert_eq!(warnings(&v), ["empty audience", "m", "3"]);
        assert!(warnings(&serde_json::json!({"id": 1})).is_empty());
    }

    #[test]
    fn rejections_are_4xx_about_the_input() {
        let status =
            |code| ApiError::Status { status: StatusCode::from_u16(code).unwrap(), message: String::new() };
        assert!(status(400).is_rejection());
        assert!(status(404).is_rejection());
        assert!(!status(401).is_rejection());
        assert!(!status(503).is_rejection());
        assert!(!ApiError::Unreachable { url: "u".into(), cause: "c".into() }.is_rejection());
    }
}

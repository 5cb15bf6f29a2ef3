//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use super::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
}

async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "UP" }))
}

/// Ready when the database and the bus answer.
async fn ready(State(app): State<AppState>) -> impl IntoResponse {
    let db = app.store.ping().await;
    let bus = app.bus.ping().await;
    let up = |ok: bool| if ok { "UP" } else { "DOWN" };
    let all = db.is_ok() && bus.is_ok();
    let body = serde_json::json!({
        "status": up(all),
        "database": up(db.is_ok()),
        "bus": up(bus.is_ok()),
    });
    (if all { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

/// Prometheus text. With `metrics_token` set, only a request bearing it may read them.
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &app.config.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .unwrap_or("");
        if !constant_time_eq(presented.trim().as_bytes(), token.expose().as_bytes()) {
            return Err(ApiError::Unauthorized {
                message: "/metrics needs the metrics token (Authorization: Bearer <metrics_token>)".into(),
                invalid: !presented.is_empty(),
            });
        }
    }
    let (users, streams) = app.hub.counts();
    let text = app.metrics.render(&[
        ("streams_open", "SSE streams open on this node.", streams as u64),
        ("users_connected", "Users with at least one open stream on this node.", users as u64),
        (
            "delivery_records_pending",
            "Delivery records accepted but not yet committed.",
            app.recorder.pending(),
        ),
        ("event_head", "Position of the last event this node dispatched.", app.hub.head().max(0) as u64),
    ]);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}

/// Compares secrets without an early exit that would leak how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn openapi(State(app): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi::document(app.config.auth))
}

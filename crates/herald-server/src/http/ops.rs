//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use crate::app::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
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

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json"))
}

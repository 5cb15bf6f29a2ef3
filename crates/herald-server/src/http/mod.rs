//! The HTTP API of SPEC section 4: one module per resource, each with its own `router()`, merged
//! here under the shared layers (`middleware`), and what the handlers share: the caller, the
//! extractors that answer bad input in our JSON error format, and that error.

mod admin_broadcasts;
mod admin_dlt;
mod admin_users;
mod caller;
mod console;
pub mod error;
mod extract;
mod middleware;
mod openapi;
mod ops;
mod paging;
mod streams;
mod user_messages;
mod views;

pub use caller::Caller;
pub use error::ApiError;
pub use streams::StreamRoutes;

use crate::net::Routers;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::Router;
use herald_domain::UserId;
use serde::{Deserialize, Deserializer};

/// The HTTP API: every route under every layer (`Routers::all`), and the stream routes alone for
/// the stream requests the accept loop answers on the raw socket (`Routers::streams`, see
/// `net/raw.rs`; a router only when CORS is configured). Those were checked against the framing
/// rules while their head was read and have no body, so they skip the framing, body-deadline and
/// body-limit layers; the span, the JSON error body and CORS are the same.
pub fn routers(state: AppState) -> Routers {
    let all = Router::new()
        .merge(admin_broadcasts::router())
        .merge(admin_users::router())
        .merge(admin_dlt::router())
        .merge(user_messages::router())
        .merge(streams::router())
        .merge(ops::router())
        .merge(console::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::body_deadline))
        .layer(axum::middleware::from_fn(middleware::enforce_framing));
    let streams = if state.config.cors_allowed_origins.is_empty() {
        StreamRoutes::Direct(state.clone())
    } else {
        let router = Router::new()
            .merge(streams::connect_router())
            .fallback(error::not_found)
            .method_not_allowed_fallback(error::method_not_allowed);
        StreamRoutes::Router(shared_layers(router, state.clone()))
    };
    Routers { all: shared_layers(all, state), streams }
}

/// The layers every request passes, outermost first: CORS, the request span, the JSON error body.
fn shared_layers(router: Router<AppState>, state: AppState) -> Router {
    let router = router
        .layer(axum::middleware::from_fn(middleware::error_body))
        .layer(axum::middleware::from_fn(middleware::observe));
    match cors_layer(&state.config) {
        Some(cors) => router.layer(cors).with_state(state),
        None => router.with_state(state),
    }
}

/// CORS for the configured origins; none (same-origin only) by default.
fn cors_layer(config: &crate::config::Config) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if config.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins = if config.cors_allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(config.cors_allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::LINK, header::HeaderName::from_static("x-total-count")])
            .allow_credentials(config.cors_allow_credentials)
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// `Err(429)` with the limiter's retry time.
pub fn limited(result: Result<(), u64>, what: &str) -> Result<(), ApiError> {
    result.map_err(|retry_after_secs| ApiError::TooManyRequests {
        message: format!("too many {what}; retry in {retry_after_secs} s"),
        retry_after_secs,
    })
}

/// A user id from a parameter or body field, required.
pub(crate) fn required_user(field: &str, raw: Option<&str>) -> Result<UserId, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::BadRequest(format!("{field}: is required")))?;
    Ok(UserId::parse(field, raw)?)
}

/// The calling client's IP (see [`crate::limits::client_ip`]); `None` outside a real connection.
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<crate::net::ConnCtl>().map(|c| c.peer.ip());
        Ok(ClientIp(app.limits.client(peer, &parts.headers)))
    }
}

/// The `{id}` path segment of a broadcast route.
pub struct BroadcastId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for BroadcastId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("id: {e}")))?;
        parse_id("id", &raw).map(BroadcastId)
    }
}

fn parse_id(field: &str, raw: &str) -> Result<i64, ApiError> {
    raw.trim().parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::BadRequest(format!("{field}: '{raw}' is not a broadcast id (a positive integer)"))
    })
}

/// A broadcast id sent as a JSON number or a numeric string (the old frontend sends either).
#[derive(Debug, Clone, Copy)]
pub struct JsonId(pub i64);

impl<'de> Deserialize<'de> for JsonId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let id = match Raw::deserialize(d).map_err(|_| serde::de::Error::custom("expected a broadcast id"))? {
            Raw::Number(n) => n,
            Raw::Text(t) => {
                t.trim().parse().map_err(|_| serde::de::Error::custom(format!("'{t}' is not a number")))?
            }
        };
        if id <= 0 {
            return Err(serde::de::Error::custom("must be a positive integer"));
        }
        Ok(JsonId(id))
    }
}

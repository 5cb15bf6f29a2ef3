//! SSE routes: connect (and its alias), disconnect, stats, and whether a user is connected.

use super::extract::{parse_form, read_body, ApiQuery};
use super::limited;
use super::middleware;
use super::ApiError;
use super::Caller;
use super::{required_user, ClientIp};
use crate::auth::Identity;
use crate::limits::ConnSlot;
use crate::metrics::Rejection;
use crate::net::{ConnCtl, STREAM_PATHS};
use crate::state::AppState;
use crate::stream::{ConnectRequest, ProfileMark};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use herald_domain::{Timestamp, User, UserId};
use herald_store::Disconnect;
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    connect_router()
        .route("/api/user/sse/disconnect", post(disconnect))
        .route("/api/user/sse/stats", get(stats))
        .route("/api/user/sse/connected/{user_id}", get(connected))
}

/// The routes that open a stream: the paths the accept loop answers on the raw socket.
pub fn connect_router() -> Router<AppState> {
    STREAM_PATHS.iter().fold(Router::new(), |router, path| router.route(path, get(connect)))
}

/// The stream routes as the accept loop answers them on the raw socket (`net/raw.rs`), which has
/// classified the request as a `GET` of one of [`STREAM_PATHS`].
#[derive(Clone)]
pub enum StreamRoutes {
    /// The handler called directly, in the span and with the JSON error body of the layers every
    /// request passes (`middleware::observed`, `middleware::json_error_body`): routing it again
    /// through the router and its layers cost a stream connect about 6 % more CPU time
    /// (`docs/benchmarks.md`, tenth session).
    Direct(AppState),
    /// With CORS configured: the router, whose CORS layer adds the headers a browser needs.
    Router(Router),
}

impl StreamRoutes {
    pub async fn answer(&self, req: Request) -> Response {
        match self {
            Self::Router(router) => {
                let Ok(response) = tower::ServiceExt::oneshot(router.clone(), req).await;
                response
            }
            Self::Direct(app) => {
                // The route is the path: neither has parameters.
                let route = STREAM_PATHS.iter().find(|p| **p == req.uri().path()).copied();
                debug_assert!(req.method() == http::Method::GET && route.is_some());
                let route = route.unwrap_or("(no route)");
                let answer = async {
                    let response = axum::handler::Handler::call(connect, req, app.clone()).await;
                    middleware::json_error_body(response, route).await
                };
                middleware::observed(http::Method::GET, route, answer).await
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectQuery {
    user_id: Option<String>,
    connection_id: Option<String>,
    session_id: Option<String>,
    last_event_id: Option<String>,
}

async fn connect(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Caller,
    ctl: Option<Extension<ConnCtl>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ConnectQuery>,
) -> Result<Response, ApiError> {
    if let Some(ip) = ip {
        if let Err(e) = limited(app.limits.connects.hit(&ip.to_string()), "stream connects from this address")
        {
            app.metrics.rejected(Rejection::RateLimit);
            return Err(e);
        }
    }
    let slot = forwarded_slot(&app, ctl.as_ref().map(|Extension(c)| c), ip)?;
    let user_id = caller.user(&[q.user_id.as_deref()])?;
    let named = q.connection_id.map(|c| ("connectionId", c)).or(q.session_id.map(|s| ("sessionId", s)));
    let connection_id: Arc<str> = match named {
        Some((field, raw)) => Arc::from(UserId::parse(field, &raw)?.as_str()),
        None => Arc::from(uuid::Uuid::new_v4().to_string()),
    };
    // An unparsable Last-Event-ID is treated as absent (SPEC section 3).
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0);
    if let Some(Extension(c)) = &ctl {
        tracing::debug!(user.id = %user_id, peer = %c.peer, ?last_event_id, "stream opening");
    }
    let (user, profile_as_of) = match caller.identity() {
        Some(identity) => sync_directory(&app, identity).await?,
        None => profile(&app, &user_id).await?,
    };
    let req = ConnectRequest {
        user,
        profile_as_of,
        connection_id,
        last_event_id,
        expires_at: caller.expires_at(),
        kill: ctl.map(|Extension(c)| c.kill).unwrap_or_default(),
        slot,
    };
    Ok(app.streams.open(req).await?)
}

/// Behind a trusted proxy every client shares the proxy's connection count, so a stream counts
/// against its forwarded address instead (`max_connections_per_ip`).
fn forwarded_slot(
    app: &AppState,
    ctl: Option<&ConnCtl>,
    client: Option<IpAddr>,
) -> Result<Option<ConnSlot>, ApiError> {
    let (Some(ctl), Some(client)) = (ctl, client) else { return Ok(None) };
    if !app.limits.is_trusted_proxy(ctl.peer.ip()) || client == ctl.peer.ip() {
        return Ok(None);
    }
    match app.limits.per_ip.acquire(client) {
        Some(slot) => Ok(Some(slot)),
        None => {
            app.metrics.rejected(Rejection::PerIp);
            Err(ApiError::TooManyRequests {
                message: format!(
                    "this address already holds {} open streams (max_connections_per_ip); close one first",
                    app.limits.per_ip.limit()
                ),
                retry_after_secs: 5,
            })
        }
    }
}

/// The user as the directory has it (added when new), and where the hub was when it was read.
/// The hub's own copy, when it has one it vouches for, spares the directory a lookup.
async fn profile(app: &AppState, id: &UserId) -> Result<(User, ProfileMark), ApiError> {
    if let Some(known) = app.hub.known_profile(id.as_str()) {
        return Ok(known);
    }
    // A user change logged after this mark makes the hub ask the store for pending messages
    // instead of trusting the profile read now.
    let mark = app.hub.profile_mark();
    Ok((app.store.ensure_user(id, Timestamp::now()).await?, mark))
}

/// The token's roles and products update the directory when they differ from it.
async fn sync_directory(app: &AppState, identity: &Identity) -> Result<(User, ProfileMark), ApiError> {
    let (stored, mark) = profile(app, &identity.user).await?;
    if stored.roles == identity.roles && stored.products == identity.products {
        return Ok((stored, mark));
    }
    let user = User {
        user_id: identity.user.clone(),
        roles: identity.roles.clone(),
        products: identity.products.clone(),
    };
    Ok((app.put_user(user).await?, mark))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DisconnectParams {
    user_id: Option<String>,
    connection_id: Option<String>,
    session_id: Option<String>,
}

/// Parameters come from the query string or a form body.
async fn disconnect(
    State(app): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<impl IntoResponse, ApiError> {
    let query: DisconnectParams = parse_form(req.uri().query().unwrap_or(""))?;
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: DisconnectParams = if is_form {
        let body = read_body(req, &()).await?;
        parse_form(
            std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("form body is not UTF-8".into()))?,
        )?
    } else {
        DisconnectParams::default()
    };
    let user = caller.user(&[form.user_id.as_deref(), query.user_id.as_deref()])?;
    let connection_id = form
        .connection_id
        .or(form.session_id)
        .or(query.connection_id)
        .or(query.session_id)
        .ok_or_else(|| ApiError::BadRequest("connectionId: is required".into()))?;
    let connection_id = UserId::parse("connectionId", &connection_id)?.into_string();
    let closed = match &app.presence {
        None => app.hub.disconnect(user.as_str(), &connection_id),
        Some(presence) => {
            // Every node (this one too) closes its matching streams on the announcement.
            let open = presence.sessions_of(user.as_str()).await?;
            let request = Disconnect { user: user.to_string(), connection_id: connection_id.clone() };
            app.store.announce_disconnect(&request).await?;
            open.iter().filter(|s| s.connection_id == connection_id).count()
        }
    };
    Ok(Json(serde_json::json!({ "userId": user, "connectionId": connection_id, "disconnected": closed })))
}

/// `totalActiveUsers` counts the cluster's users (bus = kafka); the rest is this node's.
async fn stats(State(app): State<AppState>, _caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let (users, connections) = app.hub.counts();
    let total = match &app.presence {
        Some(presence) => presence.users().await?,
        None => users as i64,
    };
    Ok(Json(serde_json::json!({
        "totalActiveUsers": total,
        "sseConnectedUsers": users,
        "totalConnections": connections,
        "podId": app.node_id,
        "timestamp": Timestamp::now(),
        "pendingDeliveryRecords": app.recorder.pending(),
    })))
}

async fn connected(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let user = required_user("userId", Some(&raw))?;
    if !caller.may_see(user.as_str()) {
        return Err(ApiError::Forbidden(
            "only the user itself or an admin may ask whether it is connected".into(),
        ));
    }
    let connected = match &app.presence {
        Some(presence) => !presence.sessions_of(user.as_str()).await?.is_empty(),
        None => app.hub.is_connected(user.as_str()),
    };
    Ok(Json(connected))
}

//! Opening a stream: admission to the hub, the first bytes (`retry:` and `CONNECTED`), the plan of
//! its catch-up, and the response whose body carries it all.

use super::body::SseStream;
use super::catch_up::CatchUp;
use super::frame;
use super::hub::{Admission, ProfileMark, Registration};
use super::service::StreamService;
use crate::limits::ConnSlot;
use crate::metrics::Rejection;
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::BytesMut;
use herald_domain::{Timestamp, User};
use herald_store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct ConnectRequest {
    pub user: User,
    /// Where the hub was when `user` was read from the directory (or from the hub itself).
    pub profile_as_of: ProfileMark,
    pub connection_id: Arc<str>,
    pub last_event_id: Option<i64>,
    /// When the caller's token expires: the stream ends then with `TOKEN_EXPIRED`.
    pub expires_at: Option<Timestamp>,
    /// Closes the stream's connection at once (a stuck client may never read another byte).
    pub kill: CancellationToken,
    /// The stream's place among its forwarded address's connections (behind a trusted proxy).
    pub slot: Option<ConnSlot>,
}

/// The data of the `CONNECTED` event (SPEC section 3).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Connected<'a> {
    connection_id: &'a str,
    head_event_id: String,
    last_event_id: Option<String>,
    server_time: Timestamp,
    user_id: &'a str,
}

/// Why a stream was not opened.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("this node holds its maximum of {0} streams; retry later or elsewhere")]
    NodeFull(usize),
    #[error("server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StreamService {
    /// Registers the stream and answers with its response. A user at its stream limit gets a 200
    /// whose body is the `CONNECTION_LIMIT_REACHED` event alone.
    pub async fn open(&self, req: ConnectRequest) -> Result<Response, Refused> {
        let admission = self.hub.register(
            req.user.clone(),
            req.profile_as_of,
            req.connection_id.clone(),
            req.kill,
            req.last_event_id,
        );
        let reg = match admission {
            Admission::Accepted(reg) => reg,
            Admission::UserLimit(limit) => {
                self.metrics.rejected(Rejection::UserLimit);
                return Ok(self.limit_response(limit));
            }
            Admission::NodeFull(limit) => {
                self.metrics.rejected(Rejection::NodeFull);
                return Err(Refused::NodeFull(limit));
            }
            Admission::ShuttingDown => {
                self.metrics.rejected(Rejection::ShuttingDown);
                return Err(Refused::ShuttingDown);
            }
        };
        let session = match &self.presence {
            None => None,
            Some((presence, limit)) => {
                match presence.admit(req.user.user_id.as_str(), &req.connection_id, *limit).await? {
                    Some(session) => Some(Box::new(session)),
                    None => {
                        self.metrics.rejected(Rejection::UserLimit);
                        return Ok(self.limit_response(*limit));
                    }
                }
            }
        };
        let Registration { rx, head, replay, guard } = reg;
        let attach = rx.attach_handle();
        // `retry:` and `CONNECTED` fit in this without growing.
        let mut first = BytesMut::with_capacity(256);
        first.extend_from_slice(&frame::retry_frame(self.retry().as_millis()));
        let connected = Connected {
            connection_id: &req.connection_id,
            head_event_id: head.to_string(),
            last_event_id: req.last_event_id.map(|n| n.to_string()),
            server_time: Timestamp::now(),
            user_id: req.user.user_id.as_str(),
        };
        frame::append_json_frame(&mut first, None, "CONNECTED", &connected).map_err(StoreError::backend)?;
        let catch_up = CatchUp::plan(self, req.user, head, replay, &guard).await?;
        let expiry = req.expires_at.map(|at| {
            let left =
                Duration::from_millis(at.millis().saturating_sub(Timestamp::now().millis()).max(0) as u64);
            Box::pin(tokio::time::sleep(left))
        });
        let stream = SseStream {
            first: Some(first.freeze()),
            catch_up: catch_up.into_stream(),
            rx,
            expiry,
            _guard: guard,
            _slot: req.slot,
            _session: session,
            done: false,
        };
        let mut response = stream_response(Body::from_stream(stream));
        // A plain socket lets the stream runtime write the live frames itself (`net/raw.rs`).
        response.extensions_mut().insert(attach);
        Ok(response)
    }

    fn limit_response(&self, limit: usize) -> Response {
        let mut body = BytesMut::new();
        body.extend_from_slice(&frame::retry_frame(self.retry().as_millis()));
        let data = serde_json::json!({
            "message": format!("this user already has {limit} open streams; close one first"),
            "limit": limit,
        });
        body.extend_from_slice(&frame::json_frame(None, "CONNECTION_LIMIT_REACHED", &data));
        stream_response(Body::from(body.freeze()))
    }
}

fn stream_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

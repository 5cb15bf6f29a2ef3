//! Opening a stream: admission, catch-up (pending messages on a fresh connect, replay after
//! `Last-Event-ID`, or `RESYNC`), then live frames from the stream's queue.

use crate::app::AppState;
use crate::error::ApiError;
use crate::hub::window::Logged;
use crate::hub::{frame, Admission, ConnGuard, Out, Registration, Replay};
use crate::metrics::Metrics;
use crate::server::ConnCtl;
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use herald_domain::{Event, EventBody, MessageView, Timestamp, User};
use herald_store::DeliveryMark;
use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Sleep;

/// Most logged events read from the store for one replay; a client further behind gets `RESYNC`.
const MAX_STORE_REPLAY: i64 = 100_000;

pub struct ConnectRequest {
    pub user: User,
    pub connection_id: Arc<str>,
    pub last_event_id: Option<i64>,
    /// When the caller's token expires: the stream ends then with `TOKEN_EXPIRED`.
    pub expires_at: Option<Timestamp>,
    pub ctl: Option<ConnCtl>,
}

pub async fn open(app: &AppState, req: ConnectRequest) -> Result<Response, ApiError> {
    let kill = req.ctl.map(|c| c.kill).unwrap_or_default();
    let admission = app.hub.register(req.user.clone(), req.connection_id.clone(), kill, req.last_event_id);
    let reg = match admission {
        Admission::Accepted(reg) => reg,
        Admission::UserLimit(limit) => {
            Metrics::inc(&app.metrics.streams_rejected_total);
            return Ok(limit_response(app, limit));
        }
        Admission::NodeFull(limit) => {
            Metrics::inc(&app.metrics.streams_rejected_total);
            return Err(ApiError::TooManyRequests {
                message: format!("this node holds its maximum of {limit} streams; retry later or elsewhere"),
                retry_after_secs: 5,
            });
        }
        Admission::ShuttingDown => return Err(ApiError::Unavailable("server is shutting down".into())),
    };
    let Registration { rx, head, replay, guard } = reg;
    let mut first = BytesMut::new();
    first.extend_from_slice(&frame::retry_frame(app.config.sse_retry.as_millis()));
    let connected = serde_json::json!({
        "connectionId": &*req.connection_id,
        "userId": req.user.user_id,
        "serverTime": Timestamp::now(),
        "lastEventId": req.last_event_id.map(|n| n.to_string()),
        "headEventId": head.to_string(),
    });
    first.extend_from_slice(&frame::json_frame(None, "CONNECTED", &connected));
    let (frames, marks) = catch_up(app, &req.user, head, replay).await?;
    for f in frames {
        first.extend_from_slice(&f);
    }
    app.recorder.record(marks).await;
    let expiry = req.expires_at.map(|at| {
        let left = Duration::from_millis(at.millis().saturating_sub(Timestamp::now().millis()).max(0) as u64);
        Box::pin(tokio::time::sleep(left))
    });
    let stream = SseStream { first: Some(first.freeze()), rx, expiry, _guard: guard, done: false };
    Ok(stream_response(Body::from_stream(stream)))
}

fn stream_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn limit_response(app: &AppState, limit: usize) -> Response {
    let mut body = BytesMut::new();
    body.extend_from_slice(&frame::retry_frame(app.config.sse_retry.as_millis()));
    let data = serde_json::json!({
        "message": format!("this user already has {limit} open streams; close one first"),
        "limit": limit,
    });
    body.extend_from_slice(&frame::json_frame(None, "CONNECTION_LIMIT_REACHED", &data));
    stream_response(Body::from(body.freeze()))
}

/// The frames a new stream gets before live events, and the delivery marks they imply.
async fn catch_up(
    app: &AppState,
    user: &User,
    head: i64,
    replay: Replay,
) -> Result<(Vec<Bytes>, Vec<DeliveryMark>), ApiError> {
    let now = Timestamp::now();
    let logged = match replay {
        Replay::Fresh => return pending(app, user, head, now).await,
        Replay::Window(entries) => entries,
        Replay::Store { after } => match from_store(app, user, after, head).await? {
            Some(entries) => entries,
            None => {
                return resync(app, user, head, now, "the resume position is older than the retained log")
                    .await
            }
        },
        Replay::Unknown => {
            return resync(app, user, head, now, "the resume position is unknown to this server").await
        }
    };
    Ok(select_replay(&logged, user, now))
}

async fn pending(
    app: &AppState,
    user: &User,
    head: i64,
    now: Timestamp,
) -> Result<(Vec<Bytes>, Vec<DeliveryMark>), ApiError> {
    let items = app.store.pending(user.user_id.as_str(), head, now).await?;
    let user_id: Arc<str> = Arc::from(user.user_id.as_str());
    let mut frames = Vec::with_capacity(items.len());
    let mut marks = Vec::with_capacity(items.len());
    for item in items {
        let data = serde_json::to_value(MessageView::for_stream(&item.broadcast))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        frames.push(frame::json_frame(item.message_seq, "MESSAGE", &data));
        marks.push(DeliveryMark {
            broadcast_id: item.broadcast.id,
            user_id: user_id.clone(),
            at: now,
            read: false,
        });
    }
    Ok((frames, marks))
}

/// Pending messages, then `RESYNC` at the head position so the client refetches its inbox.
async fn resync(
    app: &AppState,
    user: &User,
    head: i64,
    now: Timestamp,
    reason: &str,
) -> Result<(Vec<Bytes>, Vec<DeliveryMark>), ApiError> {
    Metrics::inc(&app.metrics.replays_resync_total);
    let (mut frames, marks) = pending(app, user, head, now).await?;
    frames.push(frame::json_frame(Some(head), "RESYNC", &serde_json::json!({ "reason": reason })));
    Ok((frames, marks))
}

/// The logged events `after < seq <= head` that concern `user`, or `None` when the log no longer
/// holds them all (or there are too many to replay).
async fn from_store(
    app: &AppState,
    user: &User,
    after: i64,
    head: i64,
) -> Result<Option<Vec<Logged>>, ApiError> {
    let range = app.store.event_range().await?;
    let retained = range.first.is_some_and(|first| first <= after + 1);
    if !retained || head - after > MAX_STORE_REPLAY {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut cursor = after;
    while cursor < head {
        let page = app.store.events_after(cursor, head, 1_000).await.map_err(ApiError::from)?;
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        out.extend(page.into_iter().filter(|e| e.body.concerns(user)).map(logged));
    }
    Ok(Some(out))
}

fn logged(event: Event) -> Logged {
    let frame = frame::logged_frame(&event);
    Logged { event: Arc::new(event), frame }
}

/// Keeps what the user still needs: no message that was read, removed or has expired, and no
/// fire-and-forget message (those are never replayed).
fn select_replay(entries: &[Logged], user: &User, now: Timestamp) -> (Vec<Bytes>, Vec<DeliveryMark>) {
    let mut gone = HashSet::new();
    for l in entries {
        match &l.event.body {
            EventBody::MessageRemoved { broadcast_id, .. } => {
                gone.insert(*broadcast_id);
            }
            EventBody::ReadReceipt { broadcast_id, user_id, .. } if user_id == user.user_id.as_str() => {
                gone.insert(*broadcast_id);
            }
            _ => {}
        }
    }
    let user_id: Arc<str> = Arc::from(user.user_id.as_str());
    let mut frames = Vec::new();
    let mut marks = Vec::new();
    for l in entries {
        let Some(f) = &l.frame else { continue };
        if let EventBody::Message { broadcast } = &l.event.body {
            if broadcast.fire_and_forget || gone.contains(&broadcast.id) || !broadcast.is_live_at(now) {
                continue;
            }
            marks.push(DeliveryMark {
                broadcast_id: broadcast.id,
                user_id: user_id.clone(),
                at: now,
                read: false,
            });
        }
        frames.push(f.clone());
    }
    (frames, marks)
}

/// The response body of an open stream: the catch-up bytes, then queued frames until `Close`,
/// the hub dropping the queue, or the client going away (which drops this and so the guard).
struct SseStream {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Out>,
    expiry: Option<Pin<Box<Sleep>>>,
    _guard: ConnGuard,
    done: bool,
}

/// Frames already queued behind the first are written together, up to this many bytes: one
/// chunk and one write instead of many when a stream receives bursts.
const MAX_BATCH_BYTES: usize = 64 * 1024;

impl SseStream {
    fn coalesce(&mut self, first: Bytes) -> Bytes {
        let mut batch: Option<BytesMut> = None;
        while batch.as_ref().map_or(first.len(), BytesMut::len) < MAX_BATCH_BYTES {
            match self.rx.try_recv() {
                Ok(Out::Frame(next)) => {
                    let b = batch.get_or_insert_with(|| BytesMut::from(&first[..]));
                    b.extend_from_slice(&next);
                }
                Ok(Out::Close) => {
                    self.done = true;
                    break;
                }
                Err(_) => break,
            }
        }
        batch.map_or(first, BytesMut::freeze)
    }
}

impl Stream for SseStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(expiry) = self.expiry.as_mut() {
            if expiry.as_mut().poll(cx).is_ready() {
                self.done = true;
                let data =
                    serde_json::json!({ "message": "the access token expired; reconnect with a fresh one" });
                return Poll::Ready(Some(Ok(frame::json_frame(None, "TOKEN_EXPIRED", &data))));
            }
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Out::Frame(f))) => Poll::Ready(Some(Ok(self.coalesce(f)))),
            Poll::Ready(Some(Out::Close) | None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

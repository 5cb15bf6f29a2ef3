//! Opening a stream: admission, catch-up (pending messages on a fresh connect, replay after
//! `Last-Event-ID`, or `RESYNC`), then live frames from the stream's queue.
//!
//! Catch-up is read in pages as the socket drains, never all at once: a client that connects far
//! behind and does not read holds one chunk of it in this process ([`CHUNK_BYTES`]), and is closed
//! by the same rules as any slow stream (its live queue fills, or it accepts nothing for
//! `send_timeout`).

use crate::app::AppState;
use crate::error::ApiError;
use crate::hub::window::Logged;
use crate::hub::{frame, Admission, ConnGuard, Out, Registration, Replay};
use crate::limits::ConnSlot;
use crate::metrics::{Metrics, Rejection};
use crate::server::ConnCtl;
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use herald_domain::{Broadcast, Event, EventBody, MessageView, Timestamp, User};
use herald_store::DeliveryMark;
use std::collections::{HashMap, HashSet, VecDeque};
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
    /// The stream's place among its forwarded address's connections (behind a trusted proxy).
    pub slot: Option<ConnSlot>,
}

pub async fn open(app: &AppState, req: ConnectRequest) -> Result<Response, ApiError> {
    let kill = req.ctl.map(|c| c.kill).unwrap_or_default();
    let admission = app.hub.register(req.user.clone(), req.connection_id.clone(), kill, req.last_event_id);
    let reg = match admission {
        Admission::Accepted(reg) => reg,
        Admission::UserLimit(limit) => {
            app.metrics.rejected(Rejection::UserLimit);
            return Ok(limit_response(app, limit));
        }
        Admission::NodeFull(limit) => {
            app.metrics.rejected(Rejection::NodeFull);
            return Err(ApiError::TooManyRequests {
                message: format!("this node holds its maximum of {limit} streams; retry later or elsewhere"),
                retry_after_secs: 5,
            });
        }
        Admission::ShuttingDown => {
            app.metrics.rejected(Rejection::ShuttingDown);
            return Err(ApiError::Unavailable("server is shutting down".into()));
        }
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
    let catch_up = CatchUp::plan(app, req.user, head, replay).await?;
    let expiry = req.expires_at.map(|at| {
        let left = Duration::from_millis(at.millis().saturating_sub(Timestamp::now().millis()).max(0) as u64);
        Box::pin(tokio::time::sleep(left))
    });
    let stream = SseStream {
        first: Some(first.freeze()),
        catch_up: catch_up.into_stream(),
        rx,
        expiry,
        _guard: guard,
        _slot: req.slot,
        done: false,
    };
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

/// Catch-up bytes a stream holds at a time: the next chunk is read only once the socket has taken
/// the previous one, so a client that does not read costs about this much, however far behind it
/// is (while a chunk is built, the rows it comes from are in memory too: about as much again).
const CHUNK_BYTES: usize = 64 * 1024;
/// Rows read from the store per page: as many as fill what is left of a chunk at the average
/// frame size seen so far, within these bounds.
const PAGE_ROWS: std::ops::RangeInclusive<usize> = 1..=64;
/// The frame size assumed before any was seen: large, so the first page is small.
const FIRST_FRAME_GUESS: usize = 16 * 1024;
/// Window entries looked at per page (shared frames: references only).
const WINDOW_PAGE: usize = 256;

/// One part of a stream's catch-up, in the order they are sent.
enum Step {
    /// Pending messages as `(position, broadcast id)`, oldest first.
    Pending(VecDeque<(i64, i64)>),
    /// Logged events `cursor < seq <= head` from the replay window, skipping messages removed or
    /// read later in the window (`gone`). Falls back to the store if the window moves past `cursor`.
    Window { cursor: i64, head: i64, gone: HashSet<i64> },
    /// Logged events `cursor < seq <= head` from the store.
    Store { cursor: i64, head: i64 },
    /// A frame of its own (`RESYNC`).
    Frame(Bytes),
}

/// The frames a new stream gets before live events, read as the socket drains.
struct CatchUp {
    app: AppState,
    user: User,
    user_id: Arc<str>,
    steps: VecDeque<Step>,
    /// Average frame size so far, to size store pages.
    frame_bytes: usize,
}

/// One chunk of catch-up being filled: its bytes and the delivery marks they imply.
#[derive(Default)]
struct Chunk {
    bytes: BytesMut,
    marks: Vec<DeliveryMark>,
}

impl CatchUp {
    /// Decides what the stream needs (cheap: ids and positions only); the frames come later.
    async fn plan(app: &AppState, user: User, head: i64, replay: Replay) -> Result<Self, ApiError> {
        let mut steps = VecDeque::new();
        match replay {
            Replay::Fresh => steps.push_back(pending(app, &user, head).await?),
            Replay::Window { after, gone } => steps.push_back(Step::Window { cursor: after, head, gone }),
            Replay::Store { after } => {
                let range = app.store.event_range().await?;
                let retained = range.first.is_some_and(|first| first <= after + 1);
                if retained && head - after <= MAX_STORE_REPLAY {
                    steps.push_back(Step::Store { cursor: after, head });
                } else {
                    let reason = "the resume position is older than the retained log";
                    resync(app, &user, head, reason, &mut steps).await?;
                }
            }
            Replay::Unknown => {
                let reason = "the resume position is unknown to this server";
                resync(app, &user, head, reason, &mut steps).await?;
            }
        }
        let user_id = Arc::from(user.user_id.as_str());
        Ok(Self { app: app.clone(), user, user_id, steps, frame_bytes: FIRST_FRAME_GUESS })
    }

    /// The catch-up as a stream of chunks; `None` when there is nothing to catch up.
    fn into_stream(self) -> Option<CatchUpStream> {
        if self.steps.is_empty() {
            return None;
        }
        Some(Box::pin(futures::stream::unfold(self, |mut c| async move {
            match c.next_chunk().await {
                Ok(Some(bytes)) => Some((Ok(bytes), c)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(user.id = %c.user_id, error = %e, "catch-up failed; closing the stream");
                    Some((Err(()), c))
                }
            }
        })))
    }

    /// Up to about [`CHUNK_BYTES`] of frames, with their delivery marks recorded.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        let mut chunk = Chunk { bytes: BytesMut::with_capacity(CHUNK_BYTES), marks: Vec::new() };
        while chunk.bytes.len() < CHUNK_BYTES {
            let Some(step) = self.steps.pop_front() else { break };
            if let Some(rest) = self.fill(step, &mut chunk).await? {
                self.steps.push_front(rest);
            }
        }
        let delivered = chunk.marks.len() as u64;
        self.app.recorder.record(chunk.marks).await;
        Metrics::add(&self.app.metrics.message_deliveries_total, delivered);
        Ok((!chunk.bytes.is_empty()).then(|| chunk.bytes.freeze()))
    }

    /// Store rows to read so that their frames fill what is left of `chunk`.
    fn page_rows(&self, chunk: &Chunk) -> usize {
        let left = CHUNK_BYTES.saturating_sub(chunk.bytes.len());
        (left / self.frame_bytes.max(1)).clamp(*PAGE_ROWS.start(), *PAGE_ROWS.end())
    }

    /// Adds one page of `step` to `chunk`; returns what is left of the step.
    async fn fill(&mut self, step: Step, chunk: &mut Chunk) -> Result<Option<Step>, ApiError> {
        let now = Timestamp::now();
        let before = chunk.bytes.len();
        match step {
            Step::Frame(f) => {
                chunk.bytes.extend_from_slice(&f);
                Ok(None)
            }
            Step::Pending(mut ids) => {
                let rows = self.page_rows(chunk);
                let page: Vec<(i64, i64)> = ids.drain(..ids.len().min(rows)).collect();
                let wanted: Vec<i64> = page.iter().map(|(_, id)| *id).collect();
                let live = self.app.store.live_unread(&self.user_id, &wanted, now).await?;
                let live: HashMap<i64, &Broadcast> = live.iter().map(|b| (b.id, b)).collect();
                for (seq, id) in &page {
                    if let Some(b) = live.get(id) {
                        frame::append_json_frame(
                            &mut chunk.bytes,
                            Some(*seq),
                            "MESSAGE",
                            &MessageView::for_stream(b),
                        )
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
                        chunk.marks.push(self.mark(*id, now));
                    }
                }
                self.learn_frame_size(chunk.bytes.len() - before, page.len());
                Ok((!ids.is_empty()).then_some(Step::Pending(ids)))
            }
            Step::Window { cursor, head, gone } => {
                let Some(page) = self.app.hub.window_page(cursor, head, WINDOW_PAGE) else {
                    // The window moved on while this stream caught up: the store has the rest.
                    return Ok(Some(Step::Store { cursor, head }));
                };
                if page.is_empty() {
                    return Ok(None);
                }
                let mut last = cursor;
                for l in &page {
                    if chunk.bytes.len() >= CHUNK_BYTES {
                        break;
                    }
                    self.add_window_entry(l, &gone, now, chunk);
                    last = l.event.seq;
                }
                Ok((last < head).then_some(Step::Window { cursor: last, head, gone }))
            }
            Step::Store { cursor, head } => {
                let rows = self.page_rows(chunk);
                let page = self.app.store.events_after(cursor, head, rows as u32).await?;
                let Some(last) = page.last().map(|e| e.seq) else { return Ok(None) };
                let read = page.len();
                self.add_store_page(page, now, chunk).await?;
                self.learn_frame_size(chunk.bytes.len() - before, read);
                Ok((last < head).then_some(Step::Store { cursor: last, head }))
            }
        }
    }

    /// Folds a page's frame bytes into the running average (empty pages leave it as it is).
    fn learn_frame_size(&mut self, bytes: usize, rows: usize) {
        if rows > 0 && bytes > 0 {
            self.frame_bytes = (self.frame_bytes + bytes / rows) / 2;
        }
    }

    fn add_window_entry(&self, l: &Logged, gone: &HashSet<i64>, now: Timestamp, chunk: &mut Chunk) {
        let Some(f) = &l.frame else { return };
        if !l.event.body.concerns(&self.user) {
            return;
        }
        if let EventBody::Message { broadcast } = &l.event.body {
            if broadcast.fire_and_forget || gone.contains(&broadcast.id) || !broadcast.is_live_at(now) {
                return;
            }
            chunk.marks.push(self.mark(broadcast.id, now));
        }
        chunk.bytes.extend_from_slice(f);
    }

    /// Logged events from the store: a message goes out only if it is still live and unread now.
    async fn add_store_page(
        &self,
        page: Vec<Event>,
        now: Timestamp,
        chunk: &mut Chunk,
    ) -> Result<(), ApiError> {
        let page: Vec<Event> = page.into_iter().filter(|e| e.body.concerns(&self.user)).collect();
        let messages: Vec<i64> = page
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Message { broadcast } => Some(broadcast.id),
                _ => None,
            })
            .collect();
        let live: HashSet<i64> =
            self.app.store.live_unread(&self.user_id, &messages, now).await?.iter().map(|b| b.id).collect();
        for event in &page {
            if let EventBody::Message { broadcast } = &event.body {
                if !live.contains(&broadcast.id) {
                    continue;
                }
                chunk.marks.push(self.mark(broadcast.id, now));
            }
            if let Some(f) = frame::logged_frame(event) {
                chunk.bytes.extend_from_slice(&f);
            }
        }
        Ok(())
    }

    fn mark(&self, broadcast_id: i64, at: Timestamp) -> DeliveryMark {
        DeliveryMark { broadcast_id, user_id: self.user_id.clone(), at, read: false }
    }
}

async fn pending(app: &AppState, user: &User, head: i64) -> Result<Step, ApiError> {
    let ids = app.store.pending_ids(user.user_id.as_str(), head, Timestamp::now()).await?;
    Ok(Step::Pending(ids.into()))
}

/// Pending messages, then `RESYNC` at the head position so the client refetches its inbox.
async fn resync(
    app: &AppState,
    user: &User,
    head: i64,
    reason: &str,
    steps: &mut VecDeque<Step>,
) -> Result<(), ApiError> {
    Metrics::inc(&app.metrics.replays_resync_total);
    steps.push_back(pending(app, user, head).await?);
    let f = frame::json_frame(Some(head), "RESYNC", &serde_json::json!({ "reason": reason }));
    steps.push_back(Step::Frame(f));
    Ok(())
}

type CatchUpStream = Pin<Box<dyn Stream<Item = Result<Bytes, ()>> + Send>>;

/// The response body of an open stream: the catch-up bytes, then queued frames until `Close`,
/// the hub dropping the queue, or the client going away (which drops this and so the guard).
struct SseStream {
    first: Option<Bytes>,
    catch_up: Option<CatchUpStream>,
    rx: mpsc::Receiver<Out>,
    expiry: Option<Pin<Box<Sleep>>>,
    _guard: ConnGuard,
    _slot: Option<ConnSlot>,
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
        if let Some(catch_up) = self.catch_up.as_mut() {
            match catch_up.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => return Poll::Ready(Some(Ok(chunk))),
                Poll::Ready(Some(Err(()))) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(None) => self.catch_up = None,
                Poll::Pending => return Poll::Pending,
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

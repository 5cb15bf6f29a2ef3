//! Catch-up: what a new stream gets before live events. Pending messages on a fresh connect, the
//! logged events after `Last-Event-ID` (from the replay window, or else the store), or `RESYNC`
//! when the resume point is unknown. It is read in pages as the socket drains, never all at once:
//! a client that connects far behind and does not read holds one chunk of it in this process
//! ([`CHUNK_BYTES`]), and is closed by the same rules as any slow stream (its live queue fills, or
//! it accepts nothing for `send_timeout`).

use super::frame;
use super::hub::{ConnGuard, Replay};
use super::service::StreamService;
use super::window::Logged;
use crate::metrics::Metrics;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use herald_domain::{Broadcast, Event, EventBody, MessageView, Timestamp, User};
use herald_store::{DeliveryMark, StoreError, StoreResult};
use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

/// Most logged events read from the store for one replay; a client further behind gets `RESYNC`.
const MAX_STORE_REPLAY: i64 = 100_000;

/// Catch-up bytes a stream holds at a time: the next chunk is read only once the socket has taken
/// the previous one, so a client that does not read costs about this much, however far behind it
/// is (while a chunk is built, the rows it comes from are in memory too: about as much again).
const CHUNK_BYTES: usize = 64 * 1024;
/// What a chunk is allocated with; it grows up to about [`CHUNK_BYTES`].
const FIRST_CHUNK_BYTES: usize = 4 * 1024;
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
pub(super) struct CatchUp {
    svc: StreamService,
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
    pub(super) async fn plan(
        svc: &StreamService,
        user: User,
        head: i64,
        replay: Replay,
        guard: &ConnGuard,
    ) -> StoreResult<Self> {
        let mut steps = VecDeque::new();
        match replay {
            Replay::Fresh => match pending(svc, &user, head).await? {
                Some(step) => steps.push_back(step),
                // The user has had every message up to the head: the hub may skip the store next time.
                None => svc.hub.settled(guard),
            },
            Replay::NothingPending => {}
            Replay::Window { after, gone } => steps.push_back(Step::Window { cursor: after, head, gone }),
            Replay::Store { after } => {
                let range = svc.store.event_range().await?;
                let retained = range.first.is_some_and(|first| first <= after + 1);
                if retained && head - after <= MAX_STORE_REPLAY {
                    steps.push_back(Step::Store { cursor: after, head });
                } else {
                    let reason = "the resume position is older than the retained log";
                    resync(svc, &user, head, reason, &mut steps).await?;
                }
            }
            Replay::Unknown => {
                let reason = "the resume position is unknown to this server";
                resync(svc, &user, head, reason, &mut steps).await?;
            }
        }
        let user_id = Arc::from(user.user_id.as_str());
        Ok(Self { svc: svc.clone(), user, user_id, steps, frame_bytes: FIRST_FRAME_GUESS })
    }

    /// The catch-up as a stream of chunks; `None` when there is nothing to catch up.
    pub(super) fn into_stream(self) -> Option<CatchUpStream> {
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
    async fn next_chunk(&mut self) -> StoreResult<Option<Bytes>> {
        // Grown as frames come: most catch-ups are a frame or two, and the chunk stays allocated
        // until the socket has taken it.
        let mut chunk = Chunk { bytes: BytesMut::with_capacity(FIRST_CHUNK_BYTES), marks: Vec::new() };
        while chunk.bytes.len() < CHUNK_BYTES {
            let Some(step) = self.steps.pop_front() else { break };
            if let Some(rest) = self.fill(step, &mut chunk).await? {
                self.steps.push_front(rest);
            }
        }
        let delivered = chunk.marks.len() as u64;
        self.svc.recorder.record(chunk.marks).await;
        Metrics::add(&self.svc.metrics.message_deliveries_total, delivered);
        Ok((!chunk.bytes.is_empty()).then(|| chunk.bytes.freeze()))
    }

    /// Store rows to read so that their frames fill what is left of `chunk`.
    fn page_rows(&self, chunk: &Chunk) -> usize {
        let left = CHUNK_BYTES.saturating_sub(chunk.bytes.len());
        (left / self.frame_bytes.max(1)).clamp(*PAGE_ROWS.start(), *PAGE_ROWS.end())
    }

    /// Adds one page of `step` to `chunk`; returns what is left of the step.
    async fn fill(&mut self, step: Step, chunk: &mut Chunk) -> StoreResult<Option<Step>> {
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
                let live = self.svc.store.live_unread(&self.user_id, &wanted, now).await?;
                let live: HashMap<i64, &Broadcast> = live.iter().map(|b| (b.id, b)).collect();
                for (seq, id) in &page {
                    if let Some(b) = live.get(id) {
                        frame::append_json_frame(
                            &mut chunk.bytes,
                            Some(*seq),
                            "MESSAGE",
                            &MessageView::for_stream(b),
                        )
                        .map_err(StoreError::backend)?;
                        chunk.marks.push(self.mark(*id, now));
                    }
                }
                self.learn_frame_size(chunk.bytes.len() - before, page.len());
                Ok((!ids.is_empty()).then_some(Step::Pending(ids)))
            }
            Step::Window { cursor, head, gone } => {
                let Some(page) = self.svc.hub.window_page(cursor, head, WINDOW_PAGE) else {
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
                let page = self.svc.store.events_after(cursor, head, rows as u32).await?;
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
    async fn add_store_page(&self, page: Vec<Event>, now: Timestamp, chunk: &mut Chunk) -> StoreResult<()> {
        let page: Vec<Event> = page.into_iter().filter(|e| e.body.concerns(&self.user)).collect();
        let messages: Vec<i64> = page
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Message { broadcast } => Some(broadcast.id),
                _ => None,
            })
            .collect();
        let live: HashSet<i64> =
            self.svc.store.live_unread(&self.user_id, &messages, now).await?.iter().map(|b| b.id).collect();
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

/// The user's pending messages, or `None` when there are none (then the stream has no catch-up
/// to poll and no chunk to allocate).
async fn pending(svc: &StreamService, user: &User, head: i64) -> StoreResult<Option<Step>> {
    let ids = svc.store.pending_ids(user.user_id.as_str(), head, Timestamp::now()).await?;
    Ok((!ids.is_empty()).then(|| Step::Pending(ids.into())))
}

/// Pending messages, then `RESYNC` at the head position so the client refetches its inbox.
async fn resync(
    svc: &StreamService,
    user: &User,
    head: i64,
    reason: &str,
    steps: &mut VecDeque<Step>,
) -> StoreResult<()> {
    Metrics::inc(&svc.metrics.replays_resync_total);
    steps.extend(pending(svc, user, head).await?);
    let f = frame::json_frame(Some(head), "RESYNC", &serde_json::json!({ "reason": reason }));
    steps.push_back(Step::Frame(f));
    Ok(())
}

pub(super) type CatchUpStream = Pin<Box<dyn Stream<Item = Result<Bytes, ()>> + Send>>;

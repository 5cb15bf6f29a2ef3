//! The body of an open stream: the first bytes, the catch-up chunks, then live frames from the
//! stream's queue, until `Close`, the hub dropping the queue, the token expiring, or the client
//! going away (which drops the body and so unregisters the stream). On a plain socket, live frames
//! queued while the body waits are mostly written by a writer of the stream runtime instead
//! (`queue.rs`); the body gets what that writer hands back.

use super::catch_up::CatchUpStream;
use super::frame;
use super::hub::ConnGuard;
use super::presence::SessionGuard;
use super::queue::{self, Out};
use crate::limits::ConnSlot;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::Sleep;

/// The response body of an open stream: the catch-up bytes, then queued frames until `Close`,
/// the hub dropping the queue, or the client going away (which drops this and so the guard).
pub(super) struct SseStream {
    pub(super) first: Option<Bytes>,
    pub(super) catch_up: Option<CatchUpStream>,
    pub(super) rx: queue::Receiver,
    pub(super) expiry: Option<Pin<Box<Sleep>>>,
    pub(super) _guard: ConnGuard,
    pub(super) _slot: Option<ConnSlot>,
    /// The stream's row in the cluster's presence table (bus = kafka).
    pub(super) _session: Option<Box<SessionGuard>>,
    pub(super) done: bool,
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
                let expired = frame::json_frame(None, "TOKEN_EXPIRED", &data);
                // The rest of a frame the stream's writer wrote part of goes out first.
                let out = match self.rx.leave_direct() {
                    Some(rest) => [rest, expired].concat().into(),
                    None => expired,
                };
                return Poll::Ready(Some(Ok(out)));
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

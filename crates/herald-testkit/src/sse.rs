//! A small real SSE client over reqwest: parses frames as a browser would and fails a test that
//! waits longer than [`WAIT`] for data.

use crate::WAIT;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data of {} is not JSON ({e}): {}", self.event, self.data))
    }

    pub fn broadcast_id(&self) -> i64 {
        self.json()["broadcastId"].as_i64().expect("broadcastId")
    }

    pub fn seq(&self) -> i64 {
        self.id.as_deref().expect("id").parse().expect("numeric id")
    }
}

pub struct SseClient {
    body: Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>,
    buf: Vec<u8>,
    pub retry: Option<u64>,
    pub comments: usize,
    ended: bool,
    error: Option<String>,
}

impl SseClient {
    pub fn new(resp: reqwest::Response) -> Self {
        Self::from_stream(resp.bytes_stream())
    }

    /// A client reading any stream of body bytes (an HTTP/2 response, say).
    pub fn from_stream<E: std::fmt::Display>(
        body: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    ) -> Self {
        let body = body.map(|chunk| chunk.map_err(|e| e.to_string()));
        Self { body: Box::pin(body), buf: Vec::new(), retry: None, comments: 0, ended: false, error: None }
    }

    /// Whether the body ended with an error (a reset stream, a dropped connection).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The next event of any kind (heartbeats included), `None` when the stream ended.
    pub async fn next_any(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let block = String::from_utf8(block).expect("events are UTF-8");
                if let Some(ev) = self.parse_block(&block) {
                    return Some(ev);
                }
                continue;
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout(WAIT, self.body.next()).await {
                Err(_) => {
                    panic!("no SSE data within {WAIT:?}; buffered: {:?}", String::from_utf8_lossy(&self.buf))
                }
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => {
                    self.error = Some(e);
                    self.ended = true;
                }
                Ok(None) => self.ended = true,
            }
        }
    }

    fn parse_block(&mut self, block: &str) -> Option<SseEvent> {
        let (mut id, mut event, mut data) = (None, None, None::<String>);
        for line in block.lines() {
            if line.starts_with(':') {
                self.comments += 1;
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                assert!(data.is_none(), "data spans several lines: {block:?}");
                data = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("retry: ") {
                self.retry = v.parse().ok();
            }
        }
        Some(SseEvent { id, event: event?, data: data.unwrap_or_default() })
    }

    /// The next event that is not a heartbeat.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let ev = self.next_any().await?;
            if ev.event != "HEARTBEAT" {
                return Some(ev);
            }
        }
    }

    /// The next non-heartbeat event, which must be `name`.
    pub async fn expect(&mut self, name: &str) -> SseEvent {
        let ev = self.next_event().await.unwrap_or_else(|| panic!("stream ended while waiting for {name}"));
        assert_eq!(ev.event, name, "unexpected event: {ev:?}");
        ev
    }

    /// The next event must be the MESSAGE of broadcast `id`.
    pub async fn expect_message(&mut self, id: i64) -> SseEvent {
        let ev = self.expect("MESSAGE").await;
        assert_eq!(ev.broadcast_id(), id, "unexpected message: {ev:?}");
        ev
    }

    /// Asserts that the stream ends (after any remaining events, which are returned).
    pub async fn until_end(&mut self) -> Vec<SseEvent> {
        let mut rest = Vec::new();
        while let Some(ev) = self.next_any().await {
            rest.push(ev);
        }
        rest
    }
}

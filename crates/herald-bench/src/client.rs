//! One SSE stream over its own HTTP/1.1 connection (hyper), bound to a chosen local address so
//! a run can spread over several source IPs in 127.0.0.0/8.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What one stream saw: each broadcast id with its arrival time, and the last event id.
#[derive(Debug, Default)]
pub struct StreamLog {
    // std Mutex: one writer (the stream's task), read once at the end.
    pub receipts: Mutex<Vec<(i64, Instant)>>,
    pub last_id: Mutex<Option<String>>,
}

/// Counters every stream updates, for progress and wait conditions.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub open: AtomicU64,
}

pub struct StreamSpec {
    pub server: SocketAddr,
    pub local: IpAddr,
    pub path: String,
    pub bearer: Option<String>,
    pub last_event_id: Option<String>,
}

/// Opens the stream, reports when it is established (`CONNECTED`, or the 200 for servers that
/// send no greeting), then records messages until the stream ends or `stop` fires.
pub async fn hold(
    spec: StreamSpec,
    log: Arc<StreamLog>,
    counters: Arc<Counters>,
    greeting: bool,
    established: oneshot::Sender<Result<(), String>>,
    stop: CancellationToken,
) {
    let mut established = Some(established);
    let fail = |tx: &mut Option<oneshot::Sender<Result<(), String>>>, e: String| {
        if let Some(tx) = tx.take() {
            let _ = tx.send(Err(e));
        }
    };
    let socket = match if spec.local.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() } {
        Ok(s) => s,
        Err(e) => return fail(&mut established, format!("socket: {e}")),
    };
    if let Err(e) = socket.bind(SocketAddr::new(spec.local, 0)) {
        return fail(&mut established, format!("bind {}: {e}", spec.local));
    }
    let tcp = match socket.connect(spec.server).await {
        Ok(t) => t,
        Err(e) => return fail(&mut established, format!("connect: {e}")),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
        Ok(pair) => pair,
        Err(e) => return fail(&mut established, format!("handshake: {e}")),
    };
    let driver = tokio::spawn(conn);
    let mut req = Request::get(&spec.path)
        .header("host", spec.server.to_string())
        .header("accept", "text/event-stream");
    if let Some(token) = &spec.bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if let Some(id) = &spec.last_event_id {
        req = req.header("last-event-id", id);
    }
    let response = match req.body(Empty::<Bytes>::new()) {
        Ok(req) => sender.send_request(req).await,
        Err(e) => return fail(&mut established, format!("request: {e}")),
    };
    let mut body = match response {
        Ok(r) if r.status() == 200 => r.into_body(),
        Ok(r) => return fail(&mut established, format!("status {}", r.status())),
        Err(e) => return fail(&mut established, format!("send: {e}")),
    };
    counters.open.fetch_add(1, Ordering::Relaxed);
    if !greeting {
        if let Some(tx) = established.take() {
            let _ = tx.send(Ok(()));
        }
    }
    let mut parser = Parser::default();
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = stop.cancelled() => break,
        };
        let Some(Ok(frame)) = frame else { break };
        let Ok(data) = frame.into_data() else { continue };
        let now = Instant::now();
        for event in parser.push(&data) {
            if event.name == "CONNECTED" {
                if let Some(tx) = established.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            if let Some(id) = event.id {
                *log.last_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
            }
            if let Some(bid) = event.broadcast_id {
                log.receipts.lock().unwrap_or_else(|e| e.into_inner()).push((bid, now));
                counters.received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    fail(&mut established, "stream ended before it was established".into());
    counters.open.fetch_sub(1, Ordering::Relaxed);
    driver.abort();
}

#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub id: Option<String>,
    /// For MESSAGE events (or unnamed events from other servers) carrying a `broadcastId`.
    pub broadcast_id: Option<i64>,
}

/// An incremental `text/event-stream` parser that keeps only what the bench needs.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            if let Some(ev) = parse_block(&String::from_utf8_lossy(&block)) {
                events.push(ev);
            }
        }
        events
    }
}

fn parse_block(block: &str) -> Option<Event> {
    let (mut name, mut id, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data = Some(v.trim().to_owned());
        }
    }
    let data = data?;
    let name = name.unwrap_or_else(|| "message".to_owned());
    let carries = name == "MESSAGE" || name == "message";
    let broadcast_id = if carries { broadcast_id(&data) } else { None };
    Some(Event { name, id, broadcast_id })
}

/// The number after `"broadcastId":` (the data is one line of JSON; no full parse needed).
fn broadcast_id(data: &str) -> Option<i64> {
    let at = data.find("\"broadcastId\":")? + "\"broadcastId\":".len();
    let digits: String = data[at..].trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = Parser::default();
        assert!(p.push(b"retry: 3000\n\nevent: CONNECTED\ndata: {}\n\nid: 7\nevent: MESS").len() == 1);
        let events = p.push(b"AGE\ndata: {\"broadcastId\":42,\"content\":\"x\"}\n\n");
        assert_eq!(
            events,
            vec![Event { name: "MESSAGE".into(), id: Some("7".into()), broadcast_id: Some(42) }]
        );
        let other = p.push(b"data: {\"broadcastId\": 9}\n\n");
        assert_eq!(other[0].broadcast_id, Some(9), "unnamed events from other servers count too");
        let removed = p.push(b"event: MESSAGE_REMOVED\ndata: {\"broadcastId\":42}\n\n");
        assert_eq!(removed[0].broadcast_id, None);
    }
}

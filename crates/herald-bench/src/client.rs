//! One SSE stream over its own HTTP/1.1 connection (plain or TLS), read off the socket, bound to a
//! chosen local address so a run can spread over several source IPs in 127.0.0.0/8; or one stream
//! among many on a shared HTTP/2 connection (`--http2`).

use bytes::Buf;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// What one stream saw: each broadcast id with its arrival time, and the last event id.
#[derive(Debug, Default)]
pub struct StreamLog {
    // std Mutex: one writer (the stream's task), read once at the end.
    pub receipts: Mutex<Vec<(i64, Instant)>>,
    pub last_id: Mutex<Option<String>>,
}

impl StreamLog {
    /// Room for `receipts` arrivals up front, so that a log does not grow (copying itself, on
    /// every stream at once) while the broadcasts it times arrive.
    pub fn expecting(receipts: usize) -> Self {
        Self { receipts: Mutex::new(Vec::with_capacity(receipts)), last_id: Mutex::default() }
    }
}

/// Counters every stream updates, for progress and wait conditions.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub open: AtomicU64,
}

/// How a stream reaches the server.
#[derive(Clone)]
pub enum Transport {
    Plain,
    /// HTTP/1.1 over TLS, a connection per stream.
    Tls(TlsConnector),
    /// A stream on a shared HTTP/2 connection (TLS or h2c).
    H2(SendRequest<Empty<Bytes>>),
}

/// A shared HTTP/2 connection's request handle.
pub type SendH2 = SendRequest<Empty<Bytes>>;

/// What a stream is read from once its response head is in.
type Reader = Box<dyn AsyncRead + Unpin + Send>;

pub struct StreamSpec {
    pub server: SocketAddr,
    pub transport: Transport,
    pub local: IpAddr,
    pub path: String,
    pub bearer: Option<String>,
    pub last_event_id: Option<String>,
}

/// Opens the stream, reports when it is established (`CONNECTED`, or the 200 for servers that
/// send no greeting), then records messages until the stream ends or its task is aborted
/// ([`Holders::stop`]).
///
/// The stream is read straight off the socket by this one task: an HTTP client library would add
/// a connection task and a body channel, two wake-ups per event, and the load generator shares the
/// machine with the server it measures.
pub async fn hold(
    spec: StreamSpec,
    log: Arc<StreamLog>,
    counters: Arc<Counters>,
    greeting: bool,
    established: oneshot::Sender<Result<(), String>>,
) {
    let mut established = Some(established);
    let fail = |tx: &mut Option<oneshot::Sender<Result<(), String>>>, e: String| {
        if let Some(tx) = tx.take() {
            let _ = tx.send(Err(e));
        }
    };
    let opened = match &spec.transport {
        Transport::H2(send) => open_h2(send.clone(), &spec).await,
        _ => open(&spec).await,
    };
    let (mut tcp, mut buf, chunked) = match opened {
        Ok(opened) => opened,
        Err(e) => return fail(&mut established, e),
    };
    let _open = Open::count(&counters);
    if !greeting {
        if let Some(tx) = established.take() {
            let _ = tx.send(Ok(()));
        }
    }
    let mut dechunker = chunked.then(Dechunker::default);
    let mut parser = Parser::default();
    let mut chunk = vec![0u8; buf.len().max(16 * 1024)];
    let mut read = buf.len();
    chunk[..read].copy_from_slice(&buf);
    buf.clear();
    loop {
        if read > 0 {
            let now = Instant::now();
            let on_event = |event: Event<'_>| {
                if event.name == b"CONNECTED" {
                    if let Some(tx) = established.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                note(event, now, &log, &counters);
            };
            match dechunker.as_mut() {
                Some(d) => {
                    buf.extend_from_slice(&chunk[..read]);
                    parser.push(&d.take(&mut buf), on_event)
                }
                None => parser.push(&chunk[..read], on_event),
            }
        }
        read = match tcp.read(&mut chunk).await {
            Ok(n) if n > 0 => n,
            _ => break,
        };
    }
    fail(&mut established, "stream ended before it was established".into());
}

/// Counts a stream open until dropped: when its task ends, or is aborted.
struct Open<'a>(&'a Counters);

impl<'a> Open<'a> {
    fn count(counters: &'a Counters) -> Self {
        counters.open.fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The tasks holding a set of streams. Stopping aborts them, which closes their sockets: a task
/// that also waited on a cancellation token polled it, two locks, after every event it read.
#[derive(Default)]
pub struct Holders(Vec<AbortHandle>);

impl Holders {
    pub fn push(&mut self, task: AbortHandle) {
        self.0.push(task);
    }

    pub fn stop(&self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Records an event's position and, for a message, when it arrived.
fn note(event: Event<'_>, now: Instant, log: &StreamLog, counters: &Counters) {
    if let Some(id) = event.id {
        let id = String::from_utf8_lossy(id);
        match &mut *log.last_id.lock().unwrap_or_else(|e| e.into_inner()) {
            // The same buffer again: no allocation per event.
            Some(last) => {
                last.clear();
                last.push_str(&id);
            }
            last => *last = Some(id.into_owned()),
        }
    }
    if let Some(bid) = event.broadcast_id {
        log.receipts.lock().unwrap_or_else(|e| e.into_inner()).push((bid, now));
        counters.received.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends the stream request on a shared HTTP/2 connection; the body is read as a byte stream.
async fn open_h2(
    mut send: SendRequest<Empty<Bytes>>,
    spec: &StreamSpec,
) -> Result<(Reader, BytesMut, bool), String> {
    let mut req = http::Request::get(format!("https://{}{}", spec.server, spec.path))
        .header("accept", "text/event-stream");
    if let Some(token) = &spec.bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if let Some(id) = &spec.last_event_id {
        req = req.header("last-event-id", id);
    }
    let req = req.body(Empty::new()).map_err(|e| format!("request: {e}"))?;
    send.ready().await.map_err(|e| format!("connection: {e}"))?;
    let resp = send.send_request(req).await.map_err(|e| format!("send: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status().as_u16()));
    }
    let body = resp
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map(|mut b| b.copy_to_bytes(b.remaining())).map_err(std::io::Error::other));
    Ok((Box::new(tokio_util::io::StreamReader::new(body)), BytesMut::new(), false))
}

/// Opens one shared HTTP/2 connection from `local` (over TLS when `tls` is set, else h2c).
pub async fn h2_connection(
    server: SocketAddr,
    local: IpAddr,
    tls: Option<&TlsConnector>,
) -> Result<SendRequest<Empty<Bytes>>, String> {
    let tcp = connect(server, local).await?;
    let exec = hyper_util::rt::TokioExecutor::new();
    let mut builder = hyper::client::conn::http2::Builder::new(exec);
    builder.max_concurrent_reset_streams(1024);
    let send = match tls {
        Some(connector) => {
            let io = connector.connect(server_name(server), tcp).await.map_err(|e| format!("TLS: {e}"))?;
            let (send, conn) =
                builder.handshake(hyper_util::rt::TokioIo::new(io)).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            send
        }
        None => {
            let (send, conn) =
                builder.handshake(hyper_util::rt::TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            send
        }
    };
    Ok(send)
}

fn server_name(server: SocketAddr) -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::IpAddress(server.ip().into())
}

async fn connect(server: SocketAddr, local: IpAddr) -> Result<TcpStream, String> {
    let socket = if local.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(|e| format!("socket: {e}"))?;
    // Binding the source address makes the kernel pick the port at bind time, among every port
    // no socket on that address holds; with tens of thousands of an earlier run's connections in
    // TIME_WAIT that search cost the load generator seconds of kernel time per run and stalled
    // the ramp. The address a loopback connect gets anyway is left to connect, which picks a
    // port free for this server's address only.
    if local != IpAddr::from([127, 0, 0, 1]) {
        socket.bind(SocketAddr::new(local, 0)).map_err(|e| format!("bind {local}: {e}"))?;
    }
    let tcp = socket.connect(server).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Connects from the chosen address (with TLS when asked), sends the request and reads the
/// response head. Returns the reader, the body bytes already read, and whether the body is chunked.
async fn open(spec: &StreamSpec) -> Result<(Reader, BytesMut, bool), String> {
    let tcp = connect(spec.server, spec.local).await?;
    match &spec.transport {
        Transport::Tls(connector) => {
            let tls =
                connector.connect(server_name(spec.server), tcp).await.map_err(|e| format!("TLS: {e}"))?;
            request_h1(tls, spec).await
        }
        _ => request_h1(tcp, spec).await,
    }
}

async fn request_h1<S>(mut tcp: S, spec: &StreamSpec) -> Result<(Reader, BytesMut, bool), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut request =
        format!("GET {} HTTP/1.1\r\nhost: {}\r\naccept: text/event-stream\r\n", spec.path, spec.server);
    if let Some(token) = &spec.bearer {
        request.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if let Some(id) = &spec.last_event_id {
        request.push_str(&format!("last-event-id: {id}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if tcp.read_buf(&mut buf).await.map_err(|e| format!("read: {e}"))? == 0 {
            return Err("connection closed before the response head".into());
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = response.code.unwrap_or(0);
                if status != 200 {
                    return Err(format!("status {status}"));
                }
                let chunked = response.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("transfer-encoding")
                        && String::from_utf8_lossy(h.value).to_ascii_lowercase().contains("chunked")
                });
                let _ = buf.split_to(len);
                return Ok((Box::new(tcp), buf, chunked));
            }
            Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => continue,
            Ok(httparse::Status::Partial) => return Err("response head too large".into()),
            Err(e) => return Err(format!("bad response head: {e}")),
        }
    }
}

/// Decodes `Transfer-Encoding: chunked` incrementally.
#[derive(Debug, Default)]
pub struct Dechunker {
    /// Payload bytes still due in the current chunk, then its CRLF.
    remaining: usize,
    in_chunk: bool,
}

impl Dechunker {
    pub fn take(&mut self, buf: &mut BytesMut) -> Bytes {
        let mut out = BytesMut::new();
        loop {
            if self.in_chunk {
                if self.remaining > 0 {
                    let n = self.remaining.min(buf.len());
                    out.extend_from_slice(&buf.split_to(n));
                    self.remaining -= n;
                    if self.remaining > 0 {
                        break;
                    }
                }
                if buf.len() < 2 {
                    break;
                }
                let _ = buf.split_to(2);
                self.in_chunk = false;
            }
            let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else { break };
            let line = buf.split_to(end + 2);
            let size = std::str::from_utf8(&line[..end])
                .ok()
                .and_then(|l| usize::from_str_radix(l.split(';').next().unwrap_or("").trim(), 16).ok());
            self.remaining = size.unwrap_or(0);
            self.in_chunk = true;
        }
        out.freeze()
    }
}

/// An event as parsed, borrowing the bytes it was read from.
#[derive(Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub name: &'a [u8],
    pub id: Option<&'a [u8]>,
    /// For MESSAGE events (or unnamed events from other servers) carrying a `broadcastId`.
    pub broadcast_id: Option<i64>,
}

/// An incremental `text/event-stream` parser that keeps only what the bench needs. Pinned, the load
/// generator's core spends about as much per event as the server's per delivery
/// (docs/benchmarks.md), so the parser copies and allocates nothing for events that arrive whole.
#[derive(Debug, Default)]
pub struct Parser {
    /// The start of an event whose end has not arrived yet.
    buf: Vec<u8>,
}

impl Parser {
    /// Reads `bytes` on from what came before, and calls `each` with every event they complete.
    pub fn push(&mut self, bytes: &[u8], mut each: impl FnMut(Event<'_>)) {
        if self.buf.is_empty() {
            let used = parse_blocks(bytes, &mut each);
            self.buf.extend_from_slice(&bytes[used..]);
        } else {
            self.buf.extend_from_slice(bytes);
            let used = parse_blocks(&self.buf, &mut each);
            self.buf.drain(..used);
        }
    }
}

/// Calls `each` with the event of every block of `text` that a blank line ends; returns how many
/// bytes those blocks took.
fn parse_blocks(text: &[u8], each: &mut impl FnMut(Event<'_>)) -> usize {
    let mut start = 0;
    for end in memchr::memmem::find_iter(text, b"\n\n") {
        if let Some(event) = parse_block(&text[start..end]) {
            each(event);
        }
        start = end + 2;
    }
    start
}

fn parse_block(block: &[u8]) -> Option<Event<'_>> {
    let (mut name, mut id, mut data) = (None::<&[u8]>, None::<&[u8]>, None::<&[u8]>);
    for line in block.split(|b| *b == b'\n') {
        if let Some(v) = line.strip_prefix(b"event:") {
            name = Some(v.trim_ascii());
        } else if let Some(v) = line.strip_prefix(b"id:") {
            id = Some(v.trim_ascii());
        } else if let Some(v) = line.strip_prefix(b"data:") {
            data = Some(v.trim_ascii());
        }
    }
    let data = data?;
    let name = name.unwrap_or(b"message");
    let carries = name == b"MESSAGE" || name == b"message";
    let broadcast_id = if carries { broadcast_id(data) } else { None };
    Some(Event { name, id, broadcast_id })
}

/// The number after `"broadcastId":` (the data is one line of JSON; no full parse needed).
fn broadcast_id(data: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"broadcastId\":";
    let at = memchr::memmem::find(data, KEY)? + KEY.len();
    let digits: &[u8] = data[at..].trim_ascii_start();
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..len]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name, id and broadcast id of each event `bytes` complete.
    fn push(p: &mut Parser, bytes: &[u8]) -> Vec<(String, Option<String>, Option<i64>)> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut events = Vec::new();
        p.push(bytes, |e| events.push((text(e.name), e.id.map(text), e.broadcast_id)));
        events
    }

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = Parser::default();
        let first = push(&mut p, b"retry: 3000\n\nevent: CONNECTED\ndata: {}\n\nid: 7\nevent: MESS");
        assert_eq!(first, vec![("CONNECTED".into(), None, None)]);
        let events = push(&mut p, b"AGE\ndata: {\"broadcastId\":42,\"content\":\"x\"}\n\nid: 8\n");
        assert_eq!(events, vec![("MESSAGE".into(), Some("7".into()), Some(42))]);
        let split = push(&mut p, b"event: MESSAGE\ndata: {\"broadcastId\":43}\n");
        assert_eq!(split, vec![], "no blank line yet");
        let both = push(&mut p, b"\nevent: MESSAGE\ndata: {\"broadcastId\":44}\n\n");
        assert_eq!(
            both,
            vec![("MESSAGE".into(), Some("8".into()), Some(43)), ("MESSAGE".into(), None, Some(44))],
            "an event split at its blank line, and a whole one after it"
        );
        let other = push(&mut p, b"data: {\"broadcastId\": 9}\n\n");
        assert_eq!(other[0].2, Some(9), "unnamed events from other servers count too");
        let removed = push(&mut p, b"event: MESSAGE_REMOVED\ndata: {\"broadcastId\":42}\n\n");
        assert_eq!(removed[0].2, None);
    }

    #[test]
    fn dechunks_across_reads() {
        let mut d = Dechunker::default();
        let mut buf = BytesMut::from(&b"5\r\nhel"[..]);
        assert_eq!(&d.take(&mut buf)[..], b"hel");
        buf.extend_from_slice(b"lo\r\n6;ext=1\r\n world\r");
        assert_eq!(&d.take(&mut buf)[..], b"lo world");
        buf.extend_from_slice(b"\n0\r\n\r\n");
        assert_eq!(&d.take(&mut buf)[..], b"");
    }
}

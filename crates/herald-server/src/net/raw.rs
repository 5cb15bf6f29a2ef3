//! Streams served on the raw socket. hyper keeps two 8 KiB buffers per connection for as long as
//! the connection lives; an SSE stream lives for hours and only ever writes. So the accept loop
//! reads the request head itself: a `GET` of a stream route is answered here (by the same handler,
//! span and JSON error body as through the router: `http::StreamRoutes`), written without chunked
//! encoding and delimited by closing the connection; every other request goes to hyper with the
//! bytes already read put back in front of the socket.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http_body_util::BodyExt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

use super::runtime::{Attach, StreamRuntime, Writer};
use super::wire::{self, linger_close, refuse};
use super::{ConnCtl, ConnLimits};
use crate::http::StreamRoutes;
use crate::limits::ConnSlot;
use http::StatusCode;
use std::time::Duration;

/// The routes that open a stream (`http/streams.rs` routes exactly these).
pub const STREAM_PATHS: [&str; 2] = ["/api/user/sse/connect", "/api/sse/connect"];

/// The client preface of HTTP/2 (RFC 9113 section 3.4): a plain connection that starts with it
/// speaks h2c with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Header slots parsed on the stack (`max_headers` defaults to 64); a larger limit uses the heap.
const STACK_HEADERS: usize = 64;

/// What the first request on a connection is.
pub enum Sniffed<S> {
    /// A stream request, parsed (only when streams may take the raw path).
    Stream(S, Box<http::Request<Body>>),
    /// Anything else in HTTP/1: hand the connection to hyper.
    Other(Rewind<S>),
    /// The HTTP/2 preface: hand the connection to hyper's HTTP/2 server.
    H2(Rewind<S>),
    /// Closed, timed out, or refused (already answered).
    Done,
}

/// How reading the first request head ended.
enum Head {
    /// The request and the length of its head (a stream request has no body).
    Stream(Box<http::Request<Body>>, usize),
    Other,
    /// The HTTP/2 client preface.
    H2,
    /// Refused before routing: status, message, and the request path when it could be read.
    Refused(StatusCode, String, String),
}

/// Reads the first request head (within the header timeout and size limits) and classifies it.
/// Heads that cannot be served get the JSON error body here, since hyper's own answers to them
/// have none. `raw_streams` says whether a stream request may leave hyper (plain TCP only);
/// `buf` holds what was already read of the connection.
pub async fn sniff<S>(mut stream: S, limits: &ConnLimits, raw_streams: bool, mut buf: BytesMut) -> Sniffed<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let read = tokio::time::timeout(limits.header_timeout, async {
        loop {
            if let Some(head) = examine(&buf, limits, raw_streams) {
                return Ok::<_, io::Error>(Some(head));
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(None);
            }
        }
    })
    .await;
    match read {
        Ok(Ok(Some(Head::Stream(req, len)))) if buf.len() == len => Sniffed::Stream(stream, req),
        Ok(Ok(Some(Head::H2))) => Sniffed::H2(Rewind { prefix: Some(buf.freeze()), inner: stream }),
        Ok(Ok(Some(Head::Refused(status, message, path)))) => {
            refuse(stream, status, &message, &path, &[]).await;
            Sniffed::Done
        }
        Ok(Ok(Some(_))) => Sniffed::Other(Rewind { prefix: Some(buf.freeze()), inner: stream }),
        _ => Sniffed::Done,
    }
}

/// A stream request whose whole head had arrived by the time its connection was accepted (the
/// usual case): it is read with one non-blocking `read` and answered without the socket ever
/// joining this runtime's reactor, which would cost two `epoll_ctl` calls before the stream
/// runtime's own. Anything else gives back what was read, for [`sniff`].
pub fn stream_now(
    socket: &std::net::TcpStream,
    limits: &ConnLimits,
) -> Result<Box<http::Request<Body>>, BytesMut> {
    let mut buf = BytesMut::zeroed(1024);
    match io::Read::read(&mut &*socket, &mut buf) {
        Ok(n) => buf.truncate(n),
        Err(_) => buf.clear(),
    }
    match examine(&buf, limits, true) {
        Some(Head::Stream(req, len)) if buf.len() == len => Ok(req),
        _ => Err(buf),
    }
}

/// What the head read so far is, or `None` while it is incomplete.
fn examine(buf: &[u8], limits: &ConnLimits, raw_streams: bool) -> Option<Head> {
    if buf.len() >= H2_PREFACE.len() && buf.starts_with(H2_PREFACE) {
        return Some(Head::H2);
    }
    if H2_PREFACE.starts_with(buf) {
        return None;
    }
    // On the stack for the default limit: a heap array this size on every connect cost the
    // allocator more than parsing the head.
    let (mut stack, mut heap);
    let headers: &mut [httparse::Header<'_>] = if limits.max_headers <= STACK_HEADERS {
        stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
        &mut stack[..limits.max_headers]
    } else {
        heap = vec![httparse::EMPTY_HEADER; limits.max_headers];
        &mut heap
    };
    let mut req = httparse::Request::new(headers);
    let too_large = || {
        let message = format!(
            "the request head is larger than max_header_bytes ({}) or has more than max_headers ({}) headers",
            limits.max_header_bytes, limits.max_headers
        );
        Some(Head::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message, String::new()))
    };
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Some(classify(&req, len, raw_streams)),
        Ok(httparse::Status::Partial) if buf.len() < limits.max_header_bytes => None,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => too_large(),
        Err(e) => {
            let message = format!("the request is not valid HTTP/1.1: {e}");
            Some(Head::Refused(StatusCode::BAD_REQUEST, message, String::new()))
        }
    }
}

fn classify(req: &httparse::Request<'_, '_>, len: usize, raw_streams: bool) -> Head {
    let (Some(method), Some(path)) = (req.method, req.path) else { return Head::Other };
    let headers = req.headers.iter().map(|h| (h.name, h.value));
    if let Some(problem) = wire::head_problem(req.version == Some(1), headers) {
        return Head::Refused(StatusCode::BAD_REQUEST, problem.to_owned(), route_of(path).to_owned());
    }
    if !raw_streams || method != "GET" || !STREAM_PATHS.contains(&route_of(path)) || req.version != Some(1) {
        return Head::Other;
    }
    let mut builder = http::Request::builder().method(http::Method::GET).uri(path);
    for h in req.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    match builder.body(Body::empty()) {
        Ok(request) => Head::Stream(Box::new(request), len),
        Err(e) => {
            Head::Refused(StatusCode::BAD_REQUEST, format!("bad request: {e}"), route_of(path).to_owned())
        }
    }
}

fn route_of(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Answers one stream request on the raw socket, then closes the connection.
pub async fn serve_stream(
    socket: std::net::TcpStream,
    mut request: Box<http::Request<Body>>,
    routes: &StreamRoutes,
    ctl: ConnCtl,
    conn: StreamConn<'_>,
) {
    let kill = ctl.kill.clone();
    request.extensions_mut().insert(ctl);
    let response = routes.answer(*request).await;
    let (parts, body) = response.into_parts();
    let mut head =
        format!("HTTP/1.1 {} {}\r\n", parts.status.as_u16(), parts.status.canonical_reason().unwrap_or(""));
    let streaming = parts.headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v == "text/event-stream");
    for (name, value) in parts.headers.iter() {
        if name != http::header::CONTENT_LENGTH
            && name != http::header::TRANSFER_ENCODING
            && name != http::header::CONNECTION
        {
            head.push_str(name.as_str());
            head.push_str(": ");
            head.push_str(value.to_str().unwrap_or(""));
            head.push_str("\r\n");
        }
    }
    if !streaming {
        // A complete answer (an error, say): send it with its length.
        let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", bytes.len()));
        let Ok(mut stream) = TcpStream::from_std(socket) else { return };
        if wire::write_all(&mut stream, head.as_bytes(), &bytes).await.is_ok() {
            linger_close(stream).await;
        }
        return;
    }
    head.push_str("connection: close\r\n\r\n");
    let attach = parts.extensions.get::<Attach>().cloned();
    // From here on the stream only writes: do it on the stream runtime (see `streams`), in a task
    // of its own so that nothing of this one stays allocated; the tracker still waits for it.
    let StreamConn { runtime, tasks, send_timeout, slot } = conn;
    let writer = attach.map(|attach| (attach, runtime.writer()));
    let pump = async move {
        let _slot = slot;
        let Ok(stream) = TcpStream::from_std(socket) else { return };
        tokio::select! {
            _ = pump(Arc::new(stream), head, body, send_timeout, writer) => {}
            _ = kill.cancelled() => {}
        }
    };
    runtime.spawn(tasks.track_future(pump));
}

/// What a stream connection takes along to the stream runtime.
pub struct StreamConn<'a> {
    pub runtime: &'a StreamRuntime,
    pub tasks: &'a TaskTracker,
    pub send_timeout: Duration,
    /// The connection's place in its address's count, given back when the stream ends.
    pub slot: Option<ConnSlot>,
}

/// Writes the response head, then every frame of `body` until it ends, the client goes away, or
/// the client accepts no byte for `send_timeout` while there is something to send. With `direct`,
/// the stream's queue may have its live frames written by a writer of the stream runtime while
/// this waits (see `stream/queue.rs`).
async fn pump(
    stream: Arc<TcpStream>,
    head: String,
    mut body: Body,
    send_timeout: Duration,
    direct: Option<(Attach, Arc<Writer>)>,
) {
    // The head and the body's first bytes (`retry:` and `CONNECTED`) in one write.
    let mut opening = head.into_bytes();
    let mut ended = match body.frame().now_or_never() {
        Some(Some(Ok(frame))) => {
            if let Ok(data) = frame.into_data() {
                opening.extend_from_slice(&data);
            }
            false
        }
        Some(_) => true,
        None => false,
    };
    if send(&stream, &opening, send_timeout).await.is_err() {
        return;
    }
    drop(opening);
    if let Some((attach, writer)) = direct {
        attach.0.attach(stream.clone(), writer);
    }
    while !ended {
        tokio::select! {
            biased;
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if let Err(e) = send(&stream, &data, send_timeout).await {
                        if e.kind() == io::ErrorKind::TimedOut {
                            tracing::info!("closing a stream that accepted nothing for send_timeout");
                        }
                        return;
                    }
                }
                _ => ended = true,
            },
            // The client closed (or sent something we do not expect on a stream): stop.
            _ = closed(&stream) => return,
        }
    }
    // The stream ended (Close, shutdown, limit): unregister now, then end the response with FIN.
    drop(body);
    let _ = socket2::SockRef::from(&*stream).shutdown(std::net::Shutdown::Write);
}

/// Returns once the client sends anything or closes its end.
async fn closed(stream: &TcpStream) {
    let mut probe = [0u8; 64];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            _ => return,
        }
    }
}

/// Writes all of `data`. The usual case is one non-blocking write and no timer; only a full
/// socket waits, and a wait that sees no progress for `stall` fails with `TimedOut`.
async fn send(stream: &TcpStream, mut data: &[u8], stall: Duration) -> io::Result<()> {
    while !data.is_empty() {
        match stream.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(stall, stream.writable()).await {
                    Ok(ready) => ready?,
                    Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A socket with bytes already read put back in front.
pub struct Rewind<S> {
    prefix: Option<Bytes>,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut prefix) = self.prefix.take() {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix.split_to(n));
            if !prefix.is_empty() {
                self.prefix = Some(prefix);
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::ConnCounter;
    use std::io::Write;

    const HEAD: &[u8] =
        b"GET /api/user/sse/connect?userId=u1 HTTP/1.1\r\nHost: herald\r\nLast-Event-ID: 4\r\n\r\n";

    fn limits() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(5),
            max_header_bytes: 8192,
            max_headers: 64,
            http2_max_streams: 100,
            send_timeout: Duration::from_secs(5),
            per_ip: Arc::new(ConnCounter::new(10)),
            trusted_proxies: Arc::from(Vec::new()),
        }
    }

    /// A loopback connection: the client's end, and the server's end as the accept loop has it
    /// (non-blocking, in no reactor).
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (client, server)
    }

    /// Waits until `n` bytes can be read on `socket` (without reading them).
    fn arrived(socket: &std::net::TcpStream, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut peek = vec![0u8; n];
        while !matches!(socket.peek(&mut peek), Ok(got) if got >= n) {
            assert!(std::time::Instant::now() < deadline, "{n} bytes did not arrive");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_stream_head_that_has_arrived_is_taken_with_one_read() {
        let (mut client, server) = pair();
        client.write_all(HEAD).unwrap();
        arrived(&server, HEAD.len());
        let request = stream_now(&server, &limits()).expect("a stream request");
        assert_eq!(request.uri(), "/api/user/sse/connect?userId=u1");
        assert_eq!(request.headers()["last-event-id"], "4");
    }

    #[tokio::test]
    async fn a_head_not_there_yet_or_split_is_finished_by_sniff() {
        // Nothing sent yet: nothing read, nothing lost.
        let (mut client, server) = pair();
        assert!(stream_now(&server, &limits()).unwrap_err().is_empty());
        // Half a head: given back, and `sniff` reads the rest.
        let (first, rest) = HEAD.split_at(30);
        client.write_all(first).unwrap();
        arrived(&server, first.len());
        let prefix = stream_now(&server, &limits()).unwrap_err();
        assert_eq!(&prefix[..], first);
        client.write_all(rest).unwrap();
        match sniff(TcpStream::from_std(server).unwrap(), &limits(), true, prefix).await {
            Sniffed::Stream(_, request) => assert_eq!(request.headers()["last-event-id"], "4"),
            _ => panic!("the split head is a stream request"),
        }
    }

    #[tokio::test]
    async fn other_requests_go_to_hyper_with_every_byte_read() {
        let (mut client, server) = pair();
        let head = b"GET /health/ready HTTP/1.1\r\nHost: herald\r\n\r\n";
        client.write_all(head).unwrap();
        arrived(&server, head.len());
        let prefix = stream_now(&server, &limits()).unwrap_err();
        assert_eq!(&prefix[..], head);
        let Sniffed::Other(mut io) =
            sniff(TcpStream::from_std(server).unwrap(), &limits(), true, prefix).await
        else {
            panic!("not a stream request");
        };
        let mut again = vec![0u8; head.len()];
        io.read_exact(&mut again).await.unwrap();
        assert_eq!(&again[..], head);
    }
}

//! Streams served on the raw socket. hyper keeps two 8 KiB buffers per connection for as long as
//! the connection lives; an SSE stream lives for hours and only ever writes. So the accept loop
//! reads the request head itself: a `GET` of a stream route is answered here (the router still
//! builds the response, so auth, limits and errors are the same), written without chunked encoding
//! and delimited by closing the connection; every other request goes to hyper with the bytes
//! already read put back in front of the socket.

use axum::body::Body;
use axum::Router;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::server::{ConnCtl, ConnLimits};
use crate::streams::StreamRuntime;

const STREAM_PATHS: [&str; 2] = ["/api/user/sse/connect", "/api/sse/connect"];

/// What the first request on a connection is.
pub enum Sniffed {
    /// A stream request, parsed.
    Stream(TcpStream, Box<http::Request<Body>>),
    /// Anything else: hand the connection to hyper.
    Other(Rewind),
    /// Closed, timed out, or refused (already answered).
    Done,
}

/// Reads the first request head (within the header timeout and size limits) and classifies it.
pub async fn sniff(mut stream: TcpStream, limits: &ConnLimits) -> Sniffed {
    let mut buf = BytesMut::with_capacity(1024);
    let read = tokio::time::timeout(limits.header_timeout, async {
        loop {
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok::<_, io::Error>(None);
            }
            let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => return Ok(Some(Some(parse_head(&req, len)))),
                Ok(httparse::Status::Partial) if buf.len() < limits.max_header_bytes => continue,
                Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                    return Ok(Some(None))
                }
                // Let hyper answer malformed requests its own way.
                Err(_) => return Ok(Some(Some(Head::Other))),
            }
        }
    })
    .await;
    match read {
        Ok(Ok(Some(Some(Head::Stream(req, len))))) if buf.len() == len => Sniffed::Stream(stream, req),
        Ok(Ok(Some(Some(_)))) => Sniffed::Other(Rewind { prefix: Some(buf.freeze()), inner: stream }),
        Ok(Ok(Some(None))) => {
            let _ = stream.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            Sniffed::Done
        }
        _ => Sniffed::Done,
    }
}

enum Head {
    /// The request and the length of its head (a stream request has no body).
    Stream(Box<http::Request<Body>>, usize),
    Other,
}

fn parse_head(req: &httparse::Request<'_, '_>, len: usize) -> Head {
    let (Some(method), Some(path)) = (req.method, req.path) else { return Head::Other };
    let route = path.split('?').next().unwrap_or(path);
    if method != "GET" || !STREAM_PATHS.contains(&route) || req.version != Some(1) {
        return Head::Other;
    }
    let mut builder = http::Request::builder().method(http::Method::GET).uri(path);
    for h in req.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    match builder.body(Body::empty()) {
        Ok(request) => Head::Stream(Box::new(request), len),
        Err(_) => Head::Other,
    }
}

/// Answers one stream request on the raw socket, then closes the connection.
pub async fn serve_stream(
    mut stream: TcpStream,
    mut request: Box<http::Request<Body>>,
    router: Router,
    ctl: ConnCtl,
    streams: &StreamRuntime,
    tasks: &TaskTracker,
) {
    let kill = ctl.kill.clone();
    request.extensions_mut().insert(ctl);
    let Ok(response) = router.oneshot(*request).await;
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
        let _ = write_all(&mut stream, head.as_bytes(), &bytes).await;
        return;
    }
    head.push_str("connection: close\r\n\r\n");
    // From here on the stream only writes: do it on the stream runtime (see `streams`), in a task
    // of its own so that nothing of this one stays allocated; the tracker still waits for it.
    let Ok(socket) = stream.into_std() else { return };
    let pump = async move {
        let Ok(stream) = TcpStream::from_std(socket) else { return };
        tokio::select! {
            _ = pump(stream, head, body) => {}
            _ = kill.cancelled() => {}
        }
    };
    streams.spawn(tasks.track_future(pump));
}

/// Writes the response head, then every frame of `body` until it ends or the client goes away.
async fn pump(mut stream: TcpStream, head: String, mut body: Body) {
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (mut reader, mut writer) = stream.into_split();
    let mut probe = [0u8; 64];
    loop {
        tokio::select! {
            biased;
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if writer.write_all(&data).await.is_err() {
                        return;
                    }
                }
                _ => break,
            },
            // The client closed (or sent something we do not expect on a stream): stop.
            _ = reader.read(&mut probe) => return,
        }
    }
    // The stream ended (Close, shutdown, limit): unregister now, then end the response with FIN.
    drop(body);
    let _ = writer.shutdown().await;
}

async fn write_all(stream: &mut TcpStream, head: &[u8], body: &Bytes) -> io::Result<()> {
    stream.write_all(head).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// A socket with bytes already read put back in front.
pub struct Rewind {
    prefix: Option<Bytes>,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
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

impl AsyncWrite for Rewind {
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

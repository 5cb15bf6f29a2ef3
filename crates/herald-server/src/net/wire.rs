//! What both connection paths (hyper's and the raw stream path) share on the wire: the HTTP/1.1
//! framing rules Herald enforces before a request is routed (RFC 9112: exactly one `Host`, at
//! most one `Content-Length`, `chunked` at most once and never together with a `Content-Length`;
//! a proxy in front may frame such a request differently, so it is refused with 400 and the
//! connection closed), the JSON error body, and the lingering close.
//!
//! The first request of a connection is checked on the raw socket (`raw`); later requests on a
//! kept-alive connection by a middleware (`http::middleware`).

use axum::http::StatusCode;
use herald_domain::Timestamp;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What is wrong with a request head, if anything. `http11` is false for HTTP/1.0, which may omit
/// `Host`.
pub fn head_problem<'a>(
    http11: bool,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Option<&'static str> {
    let (mut hosts, mut lengths, mut chunked) = (0, 0, 0);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked += value
                .split(|b| *b == b',')
                .filter(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
                .count();
        }
    }
    if hosts > 1 {
        Some("the request has more than one Host header")
    } else if hosts == 0 && http11 {
        Some("an HTTP/1.1 request needs a Host header")
    } else if lengths > 1 {
        Some("the request has more than one Content-Length header")
    } else if chunked > 1 {
        Some("Transfer-Encoding names chunked more than once")
    } else if chunked == 1 && lengths == 1 {
        Some("the request has both Transfer-Encoding and Content-Length")
    } else {
        None
    }
}

/// Answers with the JSON error body and closes the connection (lingering, see [`linger_close`]).
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    status: StatusCode,
    message: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
) {
    let body = error_json(status, message, path);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    if write_all(&mut stream, head.as_bytes(), body.as_bytes()).await.is_ok() {
        linger_close(stream).await;
    }
}

/// Longest a closing connection keeps reading what the client still sends, in time and bytes.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_IDLE: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Closes a connection the way nginx's lingering close does: stop sending (FIN), then read and
/// discard what the client still sends, bounded in bytes and time. Closing a socket with unread
/// data makes the kernel send a reset, and a client that writes its whole request before reading
/// (Python's `http.client`, `requests`) would get a broken pipe instead of the 413 or 431 sent
/// before it.
pub async fn linger_close<S: AsyncRead + AsyncWrite + Unpin>(io: S) {
    let _ = Lingering::new(io).shutdown().await;
}

/// A connection whose shutdown is the lingering close of [`linger_close`]. hyper shuts its
/// connection down only after flushing what it has buffered, so handing it this (rather than
/// taking the socket back from hyper to close it) cannot lose the end of an answer.
pub struct Lingering<S> {
    inner: S,
    /// Set once the connection is shut down for sending.
    draining: Option<Drain>,
}

/// Reading and discarding after the shutdown, within [`LINGER_BYTES`] and [`LINGER_TIME`], until
/// the client has sent nothing for [`LINGER_IDLE`].
struct Drain {
    drained: usize,
    deadline: Instant,
    idle: Pin<Box<Sleep>>,
}

impl Drain {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            drained: 0,
            deadline: now + LINGER_TIME,
            idle: Box::pin(tokio::time::sleep_until(now + LINGER_IDLE)),
        }
    }
}

impl<S> Lingering<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, draining: None }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self { inner, draining } = self.get_mut();
        if draining.is_none() {
            // A failed shutdown (a client already gone, most likely) still drains, as closing
            // would: what is left to read ends at once then.
            let _ = ready!(Pin::new(&mut *inner).poll_shutdown(cx));
        }
        let drain = draining.get_or_insert_with(Drain::new);
        let mut scratch = [MaybeUninit::<u8>::uninit(); 8 * 1024];
        while drain.drained < LINGER_BYTES {
            let mut buf = ReadBuf::uninit(&mut scratch);
            match Pin::new(&mut *inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    drain.drained += buf.filled().len();
                    let next = (Instant::now() + LINGER_IDLE).min(drain.deadline);
                    drain.idle.as_mut().reset(next);
                }
                // The client closed too, or the connection failed: nothing more to wait for.
                Poll::Ready(_) => break,
                Poll::Pending => {
                    ready!(drain.idle.as_mut().poll(cx));
                    break;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

pub async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, head: &[u8], body: &[u8]) -> io::Result<()> {
    stream.write_all(head).await?;
    stream.write_all(body).await
}

/// The JSON error body of SPEC section 4 (`timestamp`, `status`, `error`, `message`, `path`).
pub fn error_json(status: StatusCode, message: &str, path: &str) -> String {
    serde_json::json!({
        "timestamp": Timestamp::now(),
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
        "path": path,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// A lingering close of the server's end of a pipe; the client's end to drive it.
    fn pair() -> (tokio::task::JoinHandle<Instant>, DuplexStream) {
        let (server, client) = tokio::io::duplex(64 * 1024);
        let closing = tokio::spawn(async move {
            linger_close(server).await;
            Instant::now()
        });
        (closing, client)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_close_sends_eof_and_ends_when_the_client_closes() {
        let (closing, mut client) = pair();
        let start = Instant::now();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the server's side is shut down first");
        client.write_all(b"the rest of a request").await.unwrap();
        drop(client);
        assert_eq!(closing.await.unwrap(), start, "no waiting once the client is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_close_waits_for_an_idle_client_no_longer_than_linger_idle() {
        let (closing, _client) = pair();
        let start = Instant::now();
        assert_eq!(closing.await.unwrap() - start, LINGER_IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_keeps_sending_is_cut_at_linger_time() {
        let (closing, mut client) = pair();
        let start = Instant::now();
        // A byte every 500 ms of the paused clock: the client's pace, not a wait for the server.
        let trickle = tokio::spawn(async move {
            while client.write_all(b"x").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let closed = tokio::time::timeout(LINGER_TIME * 10, closing).await.expect("cut").unwrap();
        assert_eq!(closed - start, LINGER_TIME);
        trickle.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_floods_is_cut_at_linger_bytes() {
        let (closing, mut client) = pair();
        let flood = tokio::spawn(async move {
            let chunk = vec![0u8; 64 * 1024];
            let mut sent = 0;
            while client.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
            }
            sent
        });
        closing.await.unwrap();
        let sent = flood.await.unwrap();
        assert!((LINGER_BYTES..LINGER_BYTES + 256 * 1024).contains(&sent), "{sent} bytes taken");
    }

    fn check(http11: bool, headers: &[(&str, &str)]) -> Option<&'static str> {
        head_problem(http11, headers.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn a_well_framed_head_passes() {
        assert_eq!(check(true, &[("Host", "h"), ("Content-Length", "3")]), None);
        assert_eq!(check(true, &[("host", "h"), ("transfer-encoding", "gzip, chunked")]), None);
        assert_eq!(check(false, &[]), None, "HTTP/1.0 may omit Host");
    }

    #[test]
    fn ambiguous_framing_is_named() {
        assert!(check(true, &[]).unwrap().contains("Host"));
        assert!(check(true, &[("Host", "a"), ("HOST", "b")]).unwrap().contains("more than one Host"));
        assert!(check(true, &[("Host", "a"), ("Content-Length", "1"), ("content-length", "1")])
            .unwrap()
            .contains("Content-Length"));
        assert!(check(true, &[("Host", "a"), ("Transfer-Encoding", "chunked, chunked")])
            .unwrap()
            .contains("chunked"));
        assert!(check(
            true,
            &[("Host", "a"), ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")]
        )
        .is_some());
        assert!(check(true, &[("Host", "a"), ("Transfer-Encoding", "chunked"), ("Content-Length", "4")])
            .is_some());
    }
}

//! HTTP/2 connections (over TLS after ALPN `h2`, or h2c with prior knowledge on a plain port).
//! Every route is served, streams included; many streams share one connection, each with its own
//! flow control. A stream's kill switch is its own here: the hub closing a slow stream resets that
//! one HTTP/2 stream (`RST_STREAM` with `CANCEL`), never the connection and the others on it.
//! Streams go through hyper's response body rather than the raw socket path, which is HTTP/1.1
//! only.

use super::ConnCtl;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::ServiceExt;

/// The HTTP/2 server settings: `SETTINGS_MAX_CONCURRENT_STREAMS`, the largest header list, and
/// pings that find a dead peer within about `send_timeout`.
pub fn builder(
    max_streams: u32,
    max_header_bytes: usize,
    send_timeout: Duration,
) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(max_streams)
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(send_timeout))
        .keep_alive_timeout(send_timeout);
    builder
}

/// Serves one HTTP/2 connection until it ends; on `drain` it sends `GOAWAY` and lets the open
/// streams finish (the hub ends them with `SERVER_SHUTDOWN`).
pub async fn serve<S>(
    io: S,
    router: Router,
    peer: SocketAddr,
    conn_kill: CancellationToken,
    builder: &http2::Builder<TokioExecutor>,
    drain: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = tower::service_fn(move |mut req: Request<Incoming>| {
        // Each request gets its own switch, a child of the connection's (which shutdown cancels).
        let kill = conn_kill.child_token();
        req.extensions_mut().insert(ConnCtl { kill: kill.clone(), peer });
        let router = router.clone();
        async move {
            let Ok(response) = router.oneshot(req).await;
            Ok::<_, Infallible>(killable(response, kill))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = drain.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// An event stream's body ends with a reset of its HTTP/2 stream when `kill` fires; other
/// responses are left alone.
fn killable(response: Response, kill: CancellationToken) -> Response {
    let streaming = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        return response;
    }
    response.map(|inner| Body::new(Killable { inner, kill: Box::pin(kill.cancelled_owned()) }))
}

/// A body that fails once its kill switch fires; hyper answers a failing body on HTTP/2 with
/// `RST_STREAM`, using the reason found in the error (`CANCEL`).
struct Killable {
    inner: Body,
    kill: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl http_body::Body for Killable {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if self.kill.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(h2::Error::from(h2::Reason::CANCEL)))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

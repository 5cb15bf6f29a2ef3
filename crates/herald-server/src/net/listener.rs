//! The accept loop. Herald serves connections itself (rather than through `axum::serve`) so that
//! each connection gets a kill switch: the hub can close a stuck stream's socket at once, which a
//! response body alone cannot do when the client stopped reading.

use super::raw::{self, Rewind, Sniffed, StreamConn};
use super::runtime::StreamRuntime;
use super::{wire, ConnCtl, ConnLimits};
use crate::limits::ConnSlot;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::util::BoxCloneService;
use tower::ServiceExt;

/// What every connection task shares.
#[derive(Clone)]
struct Shared {
    router: Router,
    limits: ConnLimits,
    builder: http1::Builder,
    /// Tells hyper connections to finish their request and close (graceful shutdown).
    drain: CancellationToken,
    /// Every connection task, so shutdown can wait for streams served outside hyper too.
    tasks: TaskTracker,
    runtime: Arc<StreamRuntime>,
}

/// Serves until `stop` is cancelled; then stops accepting, calls `before_drain` (which ends the
/// streams), waits up to `grace` for connections to finish and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    stop: CancellationToken,
    grace: Duration,
    runtime: Arc<StreamRuntime>,
    before_drain: impl FnOnce(),
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    let shared = Shared {
        router,
        limits,
        builder,
        drain: CancellationToken::new(),
        tasks: TaskTracker::new(),
        runtime,
    };
    let all = CancellationToken::new();
    while let Some((stream, peer)) = accept(&listener, &stop).await {
        let _ = stream.set_nodelay(true);
        match admit(&shared.limits, peer) {
            Ok(slot) => {
                let kill = all.child_token();
                let ctl = ConnCtl { kill: kill.clone(), peer };
                shared.tasks.spawn(connection(shared.clone(), stream, ctl, slot, kill));
            }
            Err(message) => {
                shared.tasks.spawn(refuse_busy(stream, message));
            }
        }
    }
    drop(listener);
    before_drain();
    shared.drain.cancel();
    shared.tasks.close();
    if tokio::time::timeout(grace, shared.tasks.wait()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    all.cancel();
}

/// The next connection, or `None` once `stop` is cancelled.
async fn accept(listener: &TcpListener, stop: &CancellationToken) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => return Some(pair),
                Err(e) => {
                    // Out of file descriptors, most likely: give closing sockets a moment.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = stop.cancelled() => return None,
                    }
                }
            },
            _ = stop.cancelled() => return None,
        }
    }
}

/// One connection: a stream on the raw socket, or requests through hyper, until it ends or is
/// killed.
async fn connection(
    shared: Shared,
    stream: TcpStream,
    ctl: ConnCtl,
    slot: Option<ConnSlot>,
    kill: CancellationToken,
) {
    let work = async {
        match raw::sniff(stream, &shared.limits).await {
            Sniffed::Stream(stream, request) => {
                let conn = StreamConn {
                    runtime: &shared.runtime,
                    tasks: &shared.tasks,
                    send_timeout: shared.limits.send_timeout,
                    slot,
                };
                raw::serve_stream(stream, request, shared.router.clone(), ctl, conn).await
            }
            Sniffed::Other(io) => {
                let _slot = slot;
                serve_http(io, shared.router.clone(), ctl, &shared.builder, &shared.drain).await
            }
            Sniffed::Done => {}
        }
    };
    tokio::select! {
        _ = work => {}
        _ = kill.cancelled() => {}
    }
}

/// The peer's place among its address's connections; peers that are trusted proxies are not
/// counted (their streams are, per forwarded address).
fn admit(limits: &ConnLimits, peer: SocketAddr) -> Result<Option<ConnSlot>, String> {
    if limits.trusted_proxies.iter().any(|n| n.contains(peer.ip())) {
        return Ok(None);
    }
    limits.per_ip.acquire(peer.ip()).map(Some).ok_or_else(|| {
        format!(
            "this address already holds {} open connections (max_connections_per_ip); close one first",
            limits.per_ip.limit()
        )
    })
}

async fn refuse_busy(stream: TcpStream, message: String) {
    wire::refuse(stream, StatusCode::TOO_MANY_REQUESTS, &message, "", &[("retry-after", "5")]).await;
}

/// Serves HTTP/1.1 requests with hyper until the connection ends, then closes it lingering, so
/// that an answer sent before the whole request was read (413, 408) reaches the client.
async fn serve_http(
    io: Rewind,
    router: Router,
    ctl: ConnCtl,
    builder: &http1::Builder,
    drain: &CancellationToken,
) {
    let service = router.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ctl.clone());
        req
    });
    // Boxed so that its future is `Unpin`, which taking the socket back from hyper requires.
    let service = BoxCloneService::new(service);
    let mut conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let finished = tokio::select! {
        done = poll_fn(|cx| conn.poll_without_shutdown(cx)) => done,
        _ = drain.cancelled() => {
            std::pin::Pin::new(&mut conn).graceful_shutdown();
            poll_fn(|cx| conn.poll_without_shutdown(cx)).await
        }
    };
    if finished.is_ok() {
        wire::linger_close(conn.into_parts().io.into_inner()).await;
    }
}

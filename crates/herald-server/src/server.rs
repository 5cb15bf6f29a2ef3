//! The accept loop. Herald serves connections itself (rather than through `axum::serve`) so that
//! each connection gets a kill switch: the hub can close a stuck stream's socket at once, which a
//! response body alone cannot do when the client stopped reading.

use crate::sse_conn::{self, Sniffed};
use crate::streams::StreamRuntime;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Per-connection facts handlers may need, inserted into every request's extensions.
#[derive(Clone, Debug)]
pub struct ConnCtl {
    /// Cancelling it drops the connection (and its socket) immediately.
    pub kill: CancellationToken,
    pub peer: SocketAddr,
}

/// Limits on what a connection may send before the router sees a request.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Time a client has to send its request headers (slow-loris protection).
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// Serves until `stop` is cancelled; then stops accepting, calls `before_drain` (which ends the
/// streams), waits up to `grace` for connections to finish and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    stop: CancellationToken,
    grace: Duration,
    streams: Arc<StreamRuntime>,
    before_drain: impl FnOnce(),
) {
    let graceful = GracefulShutdown::new();
    // Every connection task, so shutdown can wait for streams served outside hyper too.
    let tasks = TaskTracker::new();
    let all = CancellationToken::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, most likely: give closing sockets a moment.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = stop.cancelled() => break,
                    }
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let kill = all.child_token();
        let ctl = ConnCtl { kill: kill.clone(), peer };
        let (router, limits, builder, watcher, streams, tracker) = (
            router.clone(),
            limits.clone(),
            builder.clone(),
            graceful.watcher(),
            streams.clone(),
            tasks.clone(),
        );
        tasks.spawn(async move {
            let work = async move {
                match sse_conn::sniff(stream, &limits).await {
                    Sniffed::Stream(stream, request) => {
                        sse_conn::serve_stream(stream, request, router, ctl, &streams, &tracker).await
                    }
                    Sniffed::Other(io) => {
                        let service = router.map_request(move |mut req: Request<Incoming>| {
                            req.extensions_mut().insert(ctl.clone());
                            req
                        });
                        let conn =
                            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
                        let _ = watcher.watch(conn).await;
                    }
                    Sniffed::Done => {}
                }
            };
            tokio::select! {
                _ = work => {}
                _ = kill.cancelled() => {}
            }
        });
    }
    drop(listener);
    before_drain();
    tasks.close();
    let drained = async {
        graceful.shutdown().await;
        tasks.wait().await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    all.cancel();
}

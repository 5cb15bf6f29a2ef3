//! The accept loop. Herald serves connections itself (rather than through `axum::serve`) so that
//! each connection gets a kill switch: the hub can close a stuck stream's socket at once, which a
//! response body alone cannot do when the client stopped reading.
//!
//! A plain connection is HTTP/1.1 (streams on the raw socket, the rest through hyper) or, when it
//! opens with the HTTP/2 preface, h2c. A TLS connection (when a certificate is configured) is
//! HTTP/2 or HTTP/1.1 as ALPN chose, all of it through hyper; its handshake, and then its first
//! request head or HTTP/2 preface, must each arrive within `header_timeout`.
//!
//! Accepted sockets join a reactor only where they are served: a stream request whose head has
//! arrived by the time it is looked at (most of them) is answered without this runtime's reactor
//! ever watching its socket, which then joins the stream runtime's (`raw::stream_now`).

use super::raw::{self, Rewind, Sniffed, StreamConn};
use super::runtime::StreamRuntime;
use super::{h2, wire, ConnCtl, ConnLimits, Routers};
use crate::limits::ConnSlot;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::Router;
use bytes::BytesMut;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// An accepted connection before it joins a runtime's reactor.
type Socket = std::net::TcpStream;

/// The listening socket, and the TLS acceptor when serving HTTPS.
pub struct Listening {
    pub listener: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// What every connection task shares.
#[derive(Clone)]
struct Shared {
    routers: Routers,
    limits: ConnLimits,
    builder: http1::Builder,
    h2: hyper::server::conn::http2::Builder<hyper_util::rt::TokioExecutor>,
    /// Set when serving HTTPS.
    tls: Option<TlsAcceptor>,
    /// Tells hyper connections to finish their request and close (graceful shutdown).
    drain: CancellationToken,
    /// Every connection task, so shutdown can wait for streams served outside hyper too.
    tasks: TaskTracker,
    runtime: Arc<StreamRuntime>,
}

/// Serves until `stop` is cancelled; then stops accepting, calls `before_drain` (which ends the
/// streams), waits up to `grace` for connections to finish and closes the rest.
pub async fn serve(
    listening: Listening,
    routers: Routers,
    limits: ConnLimits,
    stop: CancellationToken,
    grace: Duration,
    runtime: Arc<StreamRuntime>,
    before_drain: impl FnOnce(),
) {
    let Listening { listener, tls } = listening;
    let listener = match Acceptor::new(listener) {
        Ok(listener) => listener,
        Err(e) => return tracing::error!(error = %e, "cannot watch the listening socket"),
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    let h2 = h2::builder(limits.http2_max_streams, limits.max_header_bytes, limits.send_timeout);
    let shared = Shared {
        routers,
        limits,
        builder,
        h2,
        tls,
        drain: CancellationToken::new(),
        tasks: TaskTracker::new(),
        runtime,
    };
    let all = CancellationToken::new();
    while let Some((stream, peer)) = accept(&listener, &stop).await {
        // Linux hands the listener's `TCP_NODELAY` down to what it accepts (`Acceptor::new`).
        #[cfg(not(target_os = "linux"))]
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
    // GOAWAY (and the end of keep-alive) first, then SERVER_SHUTDOWN on each stream.
    shared.drain.cancel();
    before_drain();
    shared.tasks.close();
    if tokio::time::timeout(grace, shared.tasks.wait()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    all.cancel();
}

/// The listening socket. What it accepts joins a reactor only where it is served (see `plain`).
/// Two system calls fewer per connection than a plain `accept`: the socket is non-blocking from
/// `accept4` on (mio's accept), and on Linux it has `TCP_NODELAY` from the listener.
struct Acceptor(AsyncFd<mio::net::TcpListener>);

impl Acceptor {
    fn new(listener: TcpListener) -> io::Result<Self> {
        let listener = listener.into_std()?;
        socket2::SockRef::from(&listener).set_tcp_nodelay(true)?;
        // `AsyncFd::new` is deprecated because a borrowed descriptor could be closed while
        // registered; this one is owned here, never handed out, and closed only when dropped,
        // after deregistering. The workspace forbids the `unsafe` of `AsyncFd::register`.
        #[allow(deprecated)]
        AsyncFd::new(mio::net::TcpListener::from_std(listener)).map(Self)
    }

    /// The next connection, already non-blocking.
    async fn accept(&self) -> io::Result<(Socket, SocketAddr)> {
        loop {
            let mut ready = self.0.readable().await?;
            if let Ok(accepted) = ready.try_io(|listener| listener.get_ref().accept()) {
                let (socket, peer) = accepted?;
                return Ok((socket.into(), peer));
            }
        }
    }
}

/// The next connection, or `None` once `stop` is cancelled.
async fn accept(listener: &Acceptor, stop: &CancellationToken) -> Option<(Socket, SocketAddr)> {
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
    socket: Socket,
    ctl: ConnCtl,
    slot: Option<ConnSlot>,
    kill: CancellationToken,
) {
    let work = async {
        let Some(acceptor) = shared.tls.clone() else { return plain(&shared, socket, ctl, slot).await };
        let Ok(stream) = TcpStream::from_std(socket) else { return };
        // Boxed, like the HTTP/2 branch of `plain`: its state is large, and the plain HTTP/1.1
        // path, where most connections are, should not carry it in every connection's task.
        Box::pin(secure(&shared, acceptor, stream, ctl, slot)).await
    };
    tokio::select! {
        _ = work => {}
        _ = kill.cancelled() => {}
    }
}

/// A plain connection: a stream on the raw socket, HTTP/1.1 through hyper, or h2c.
async fn plain(shared: &Shared, socket: Socket, ctl: ConnCtl, slot: Option<ConnSlot>) {
    let conn = |slot| StreamConn {
        runtime: &shared.runtime,
        tasks: &shared.tasks,
        send_timeout: shared.limits.send_timeout,
        slot,
    };
    let streams = &shared.routers.streams;
    // The head is usually there already, or a moment behind the handshake: look twice before the
    // socket joins this runtime's reactor.
    let mut prefix = BytesMut::new();
    for first in [true, false] {
        match raw::stream_now(&socket, &shared.limits) {
            Ok(request) => return raw::serve_stream(socket, request, streams, ctl, conn(slot)).await,
            Err(read) if read.is_empty() && first => tokio::task::yield_now().await,
            Err(read) => {
                prefix = read;
                break;
            }
        }
    }
    let Ok(stream) = TcpStream::from_std(socket) else { return };
    match raw::sniff(stream, &shared.limits, true, prefix).await {
        Sniffed::Stream(stream, request) => {
            let Ok(socket) = stream.into_std() else { return };
            raw::serve_stream(socket, request, streams, ctl, conn(slot)).await
        }
        Sniffed::Other(io) => {
            let _slot = slot;
            serve_http(io, shared.routers.all.clone(), ctl, &shared.builder, &shared.drain).await
        }
        Sniffed::H2(io) => {
            let _slot = slot;
            let all = shared.routers.all.clone();
            Box::pin(h2::serve(io, all, ctl.peer, ctl.kill, &shared.h2, &shared.drain)).await
        }
        Sniffed::Done => {}
    }
}

/// A TLS connection: the handshake (within `header_timeout`), then HTTP/2 or HTTP/1.1 as the
/// first bytes say (ALPN `h2` clients send the HTTP/2 preface), both through hyper.
async fn secure(
    shared: &Shared,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    ctl: ConnCtl,
    slot: Option<ConnSlot>,
) {
    let _slot = slot;
    let tls = match tokio::time::timeout(shared.limits.header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::debug!(peer = %ctl.peer, error = %e, "TLS handshake failed"),
        Err(_) => {
            return tracing::debug!(peer = %ctl.peer, "TLS handshake not finished within header_timeout")
        }
    };
    // After ALPN `h2` the client's first bytes are the HTTP/2 preface; reading them here (rather
    // than leaving it to hyper) holds them to `header_timeout` too.
    match raw::sniff(tls, &shared.limits, false, BytesMut::with_capacity(1024)).await {
        Sniffed::Other(io) => {
            serve_http(io, shared.routers.all.clone(), ctl, &shared.builder, &shared.drain).await
        }
        Sniffed::H2(io) => {
            h2::serve(io, shared.routers.all.clone(), ctl.peer, ctl.kill, &shared.h2, &shared.drain).await
        }
        Sniffed::Stream(..) | Sniffed::Done => {}
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

async fn refuse_busy(socket: Socket, message: String) {
    let Ok(stream) = TcpStream::from_std(socket) else { return };
    wire::refuse(stream, StatusCode::TOO_MANY_REQUESTS, &message, "", &[("retry-after", "5")]).await;
}

/// Serves HTTP/1.1 requests with hyper until the connection ends. When it ends in good order
/// (not by an I/O error or hyper's header timeout) hyper flushes its last answer and then shuts
/// the connection down, which is a lingering close (`wire::Lingering`), so that an answer sent
/// before the whole request was read (413, 408) reaches the client.
async fn serve_http<S>(
    io: Rewind<S>,
    router: Router,
    ctl: ConnCtl,
    builder: &http1::Builder,
    drain: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ctl.clone());
        req
    });
    let io = TokioIo::new(wire::Lingering::new(io));
    let conn = builder.serve_connection(io, TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        // A request already read (in `io`'s prefix) is answered even when draining has begun.
        biased;
        _ = conn.as_mut() => {}
        _ = drain.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the connection paths expect of an accepted socket, set by the listener instead of a
    /// call per connection: frames leave at once (no Nagle delay behind an unacknowledged one),
    /// and a read never blocks the runtime's thread.
    #[tokio::test]
    async fn accepted_sockets_are_non_blocking_with_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = Acceptor::new(listener).unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (socket, _) = acceptor.accept().await.unwrap();
        #[cfg(target_os = "linux")]
        assert!(socket.nodelay().unwrap(), "TCP_NODELAY, from the listener");
        let mut buf = [0u8; 8];
        let read = io::Read::read(&mut &socket, &mut buf);
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::WouldBlock, "non-blocking");
    }
}

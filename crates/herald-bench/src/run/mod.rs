//! One benchmark run: open the streams, publish, wait for the deliveries, optionally drop and
//! reconnect everything with `Last-Event-ID`, and measure.

mod measure;
mod traffic;

use crate::client::{self, Counters, Holders, StreamLog, StreamSpec, Transport};
use crate::proc;
use crate::report::{BroadcastTimes, Percentiles, Report, Server, Storm};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Herald's own API: admin create, `/api/user/sse/connect`.
    Herald,
    /// An nginx + Nchan style server: subscribe to one URL, publish raw JSON to another.
    Nchan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    All,
    /// Every bench user gets role BENCH first (PUT /api/admin/users), broadcasts target it.
    Role,
    /// Broadcasts list the first `min(streams, 1000)` users.
    Selected,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    /// Base URLs the streams are spread over, round-robin (a cluster's nodes); empty: `url`.
    pub stream_urls: Vec<String>,
    pub mode: Mode,
    pub streams: usize,
    pub broadcasts: usize,
    /// Broadcasts per second.
    pub rate: f64,
    pub target: Target,
    /// Stream connects in flight at once while ramping up.
    pub concurrency: usize,
    /// Spread streams over 127.0.0.1 .. 127.0.0.N.
    pub source_ips: usize,
    /// The server's process id, for memory and CPU.
    pub pid: Option<u32>,
    /// With `auth = jwt`: mint per-user and admin tokens with this HS256 secret.
    pub jwt_secret: Option<String>,
    pub content_bytes: usize,
    /// How long to wait for all deliveries (and for the storm to catch up).
    pub wait: Duration,
    /// Broadcasts to publish while every stream is disconnected, then reconnect all at once.
    pub storm_missed: Option<usize>,
    pub user_prefix: String,
    /// Nchan mode: the subscribe and publish paths.
    pub sub_path: String,
    pub pub_path: String,
    /// Progress lines on stderr.
    pub progress: bool,
    /// Instead of reading streams: publish, then open this many streams that never read.
    pub stalled: Option<usize>,
    /// The `Last-Event-ID` the stalled streams send (none: a fresh connect).
    pub stalled_resume: Option<i64>,
    /// PEM certificate to trust for an `https://` URL (a self-signed one, say).
    pub tls_ca: Option<std::path::PathBuf>,
    /// Streams per HTTP/2 connection (over TLS for `https://`, else h2c); none: HTTP/1.1, a
    /// connection per stream.
    pub http2: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            stream_urls: Vec::new(),
            mode: Mode::Herald,
            streams: 100,
            broadcasts: 10,
            rate: 10.0,
            target: Target::All,
            concurrency: 256,
            source_ips: 1,
            pid: None,
            jwt_secret: None,
            content_bytes: 64,
            wait: Duration::from_secs(30),
            storm_missed: None,
            user_prefix: "bench-".into(),
            sub_path: "/sub/bench".into(),
            pub_path: "/pub/bench".into(),
            progress: true,
            stalled: None,
            stalled_resume: None,
            tls_ca: None,
            http2: None,
        }
    }
}

struct Bench {
    opts: Options,
    server: SocketAddr,
    /// Where streams connect, round-robin.
    stream_servers: Vec<SocketAddr>,
    http: reqwest::Client,
    counters: Arc<Counters>,
    /// TLS for the streams: ALPN `http/1.1` and `h2` (for `https://` URLs).
    tls: Option<TlsConnectors>,
}

struct TlsConnectors {
    h1: tokio_rustls::TlsConnector,
    h2: tokio_rustls::TlsConnector,
}

/// One broadcast the bench created: its id, when the create request started, and how long the
/// server took to answer it.
struct Sent {
    id: i64,
    started: Instant,
    answered_ms: f64,
}

struct Streams {
    logs: Vec<Arc<StreamLog>>,
    holders: Holders,
    held: usize,
    failed: usize,
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let server = resolve(&opts.url)?;
    let mut stream_servers =
        opts.stream_urls.iter().map(|u| resolve(u)).collect::<anyhow::Result<Vec<_>>>()?;
    if stream_servers.is_empty() {
        stream_servers.push(server);
    }
    let mut http = reqwest::Client::builder().pool_max_idle_per_host(64);
    let mut tls = None;
    if opts.url.starts_with("https://") {
        let path =
            opts.tls_ca.as_ref().context("an https:// URL needs --tls-ca (the certificate to trust)")?;
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        tls = Some(TlsConnectors { h1: connector(&pem, b"http/1.1")?, h2: connector(&pem, b"h2")? });
    }
    let http = http.build()?;
    let bench = Bench { opts, server, stream_servers, http, counters: Arc::new(Counters::default()), tls };
    bench.execute().await
}

/// A TLS client trusting only the certificate(s) in `pem`, offering `alpn`.
fn connector(pem: &[u8], alpn: &[u8]) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.context("--tls-ca is not a PEM certificate")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn resolve(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .context("--url must start with http:// or https://")?;
    let host = rest.split('/').next().unwrap_or(rest);
    use std::net::ToSocketAddrs;
    host.to_socket_addrs()?.next().with_context(|| format!("cannot resolve {host}"))
}

impl Bench {
    async fn execute(&self) -> anyhow::Result<Report> {
        let o = &self.opts;
        let mut report = Report {
            mode: format!("{:?} {:?}", o.mode, o.target).to_lowercase(),
            streams_requested: o.streams,
            ..Report::default()
        };
        let mut server = Server { before: proc::sample(o.pid), ..Server::default() };
        if let Some(count) = o.stalled {
            self.publish_timed(&mut report).await;
            report.stalled = Some(self.stalled(count).await?);
        } else {
            self.deliveries(&mut report, &mut server).await?;
        }
        server.after = proc::sample(o.pid);
        report.server = server;
        Ok(report)
    }

    /// The main scenario: open the streams, publish, wait for and score the deliveries, and
    /// optionally the reconnect storm.
    async fn deliveries(&self, report: &mut Report, server: &mut Server) -> anyhow::Result<()> {
        let o = &self.opts;
        if o.target == Target::Role && o.mode == Mode::Herald {
            self.grant_roles().await?;
        }
        let ramp = Instant::now();
        let streams = self.open_all(None, o.broadcasts).await;
        report.ramp_seconds = ramp.elapsed().as_secs_f64();
        report.streams_held = streams.held;
        report.streams_failed = streams.failed;
        // Let the server settle before reading its memory while it holds the streams.
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.holding = proc::sample(o.pid);
        if let (Some(b), Some(h)) = (server.before, server.holding) {
            server.rss_per_stream_kib =
                Some((h.rss_kib as f64 - b.rss_kib as f64) / streams.held.max(1) as f64);
        }
        let expected_per_broadcast = self.audience(streams.held);
        let sent = self.publish_timed(report).await;
        let expected = expected_per_broadcast.len() as u64 * sent.len() as u64;
        self.wait_for(|| self.counters.received.load(Ordering::Relaxed) >= expected, o.wait, "deliveries")
            .await;
        report.records_committed_ms = self.records_committed(&sent, expected_per_broadcast.len()).await;
        self.score(report, &streams.logs, &sent, &expected_per_broadcast);
        match o.storm_missed {
            Some(missed) => report.storm = Some(self.storm(streams, missed).await),
            None => streams.holders.stop(),
        }
        Ok(())
    }

    /// Publishes `--broadcasts` at `--rate`, noting how long it took and how many failed.
    async fn publish_timed(&self, report: &mut Report) -> Vec<Sent> {
        let publish = Instant::now();
        let sent = self.publish_all(self.opts.broadcasts, self.opts.rate).await;
        report.publish_seconds = publish.elapsed().as_secs_f64();
        report.broadcasts_sent = sent.len();
        report.broadcasts_failed = self.opts.broadcasts - sent.len();
        sent
    }

    async fn stalled(&self, count: usize) -> anyhow::Result<crate::stalled::Stalled> {
        let o = &self.opts;
        let setup = crate::stalled::Setup {
            url: &o.url,
            server: self.server,
            http: &self.http,
            pid: o.pid,
            source_ips: o.source_ips,
            user_prefix: &o.user_prefix,
            wait: o.wait,
        };
        crate::stalled::run(&setup, count, o.stalled_resume).await
    }

    fn user(&self, i: usize) -> String {
        format!("{}{i:06}", self.opts.user_prefix)
    }

    /// Indexes of the streams each broadcast is meant for.
    fn audience(&self, held: usize) -> Vec<usize> {
        let n = if self.opts.target == Target::Selected { held.min(traffic::SELECTED_MAX) } else { held };
        (0..n).collect()
    }

    fn token(&self, sub: &str, roles: &[&str]) -> Option<String> {
        let secret = self.opts.jwt_secret.as_ref()?;
        let exp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() + 24 * 3600;
        let claims = json!({"sub": sub, "roles": roles, "exp": exp});
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).ok()
    }

    async fn wait_for(&self, done: impl Fn() -> bool, limit: Duration, what: &str) -> bool {
        let deadline = Instant::now() + limit;
        let mut last_print = Instant::now();
        while !done() {
            if Instant::now() >= deadline {
                eprintln!("[bench] gave up waiting for {what} after {limit:?}");
                return false;
            }
            if self.opts.progress && last_print.elapsed() >= Duration::from_secs(1) {
                eprintln!(
                    "[bench] waiting for {what}: {} received",
                    self.counters.received.load(Ordering::Relaxed)
                );
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

//! The stalled-readers scenario: streams that send their request and never read a byte (with a
//! small receive buffer), connected while a large catch-up waits for them. It measures the
//! server's resident memory while they hang on and how long until the server has closed them
//! all: what a client that never reads costs Herald.

use crate::proc;
use serde::Serialize;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stalled {
    pub streams: usize,
    pub opened: usize,
    /// `Last-Event-ID` the streams sent (none: a fresh connect, so the pending catch-up).
    pub resume_from: Option<i64>,
    pub rss_before_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    /// (peak − before) / streams opened.
    pub peak_per_stream_kib: Option<f64>,
    /// Resident memory once the server had closed them all: what stays (caches, the allocator's
    /// free lists) against what the open streams held (peak − this).
    pub rss_after_close_kib: Option<u64>,
    /// From the first connect until the server held none of them.
    pub all_closed_seconds: Option<f64>,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let closed = self
            .all_closed_seconds
            .map_or("not all closed".to_owned(), |t| format!("all closed after {t:.1} s"));
        let per = self.peak_per_stream_kib.map_or("n/a".to_owned(), |k| format!("{k:.1} KiB"));
        let after = self.rss_after_close_kib.map_or("n/a".to_owned(), |k| format!("{k} KiB"));
        write!(
            f,
            "stalled readers      {} of {} opened; peak memory {} KiB over {} KiB before ({per} per stream), \
             {after} once closed; {closed}",
            self.opened,
            self.streams,
            self.rss_peak_kib.unwrap_or(0),
            self.rss_before_kib.unwrap_or(0)
        )
    }
}

pub struct Setup<'a> {
    pub url: &'a str,
    pub server: SocketAddr,
    pub http: &'a reqwest::Client,
    pub pid: Option<u32>,
    pub source_ips: usize,
    pub user_prefix: &'a str,
    pub wait: Duration,
}

/// Opens `count` never-reading streams and watches the server until it has closed them.
pub async fn run(s: &Setup<'_>, count: usize, resume_from: Option<i64>) -> anyhow::Result<Stalled> {
    let mut report = Stalled { streams: count, resume_from, ..Stalled::default() };
    report.rss_before_kib = proc::sample(s.pid).map(|u| u.rss_kib);
    let started = Instant::now();
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let user = format!("{}stalled-{i:05}", s.user_prefix);
        match open(s, i, &user, resume_from).await {
            Ok(stream) => held.push(stream),
            Err(e) => eprintln!("[bench] stalled stream {i} failed: {e}"),
        }
    }
    report.opened = held.len();
    let mut peak = report.rss_before_kib;
    let deadline = started + s.wait;
    // First until the server holds them all (or has closed some already), then until it holds none.
    let mut registered = false;
    while Instant::now() < deadline {
        peak = peak.max(proc::sample(s.pid).map(|u| u.rss_kib));
        let open = open_streams(s).await?;
        registered |=
            open >= report.opened as i64 || (open > 0 && started.elapsed() > Duration::from_secs(5));
        if registered && open == 0 {
            report.all_closed_seconds = Some(started.elapsed().as_secs_f64());
            report.rss_after_close_kib = proc::sample(s.pid).map(|u| u.rss_kib);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.rss_peak_kib = peak;
    if let (Some(b), Some(p)) = (report.rss_before_kib, peak) {
        report.peak_per_stream_kib = Some((p as f64 - b as f64) / report.opened.max(1) as f64);
    }
    drop(held);
    Ok(report)
}

async fn open(s: &Setup<'_>, i: usize, user: &str, resume_from: Option<i64>) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let ip = Ipv4Addr::new(127, 0, 0, 1 + (i % s.source_ips.max(1)) as u8);
    socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
    let mut stream = socket.connect(s.server).await?;
    let resume = resume_from.map(|n| format!("Last-Event-ID: {n}\r\n")).unwrap_or_default();
    let head = format!("GET /api/user/sse/connect?userId={user} HTTP/1.1\r\nHost: bench\r\n{resume}\r\n");
    stream.write_all(head.as_bytes()).await?;
    Ok(stream)
}

async fn open_streams(s: &Setup<'_>) -> anyhow::Result<i64> {
    let stats: Value = s.http.get(format!("{}/api/user/sse/stats", s.url)).send().await?.json().await?;
    Ok(stats["totalConnections"].as_i64().unwrap_or(0))
}

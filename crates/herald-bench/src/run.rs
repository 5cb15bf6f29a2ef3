//! One benchmark run: open the streams, publish, wait for the deliveries, optionally drop and
//! reconnect everything with `Last-Event-ID`, and measure.

use crate::client::{self, Counters, StreamLog, StreamSpec};
use crate::proc;
use crate::report::{Percentiles, Report, Server, Storm};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
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
        }
    }
}

struct Bench {
    opts: Options,
    server: SocketAddr,
    http: reqwest::Client,
    counters: Arc<Counters>,
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
    stop: CancellationToken,
    held: usize,
    failed: usize,
}

pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let server = resolve(&opts.url)?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let bench = Bench { opts, server, http, counters: Arc::new(Counters::default()) };
    bench.execute().await
}

fn resolve(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.strip_prefix("http://").context("--url must start with http://")?;
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
            let publish = Instant::now();
            let sent = self.publish_all(o.broadcasts, o.rate).await;
            report.publish_seconds = publish.elapsed().as_secs_f64();
            report.broadcasts_sent = sent.len();
            report.broadcasts_failed = o.broadcasts - sent.len();
            let setup = crate::stalled::Setup {
                url: &o.url,
                server: self.server,
                http: &self.http,
                pid: o.pid,
                source_ips: o.source_ips,
                user_prefix: &o.user_prefix,
                wait: o.wait,
            };
            report.stalled = Some(crate::stalled::run(&setup, count, o.stalled_resume).await?);
            server.after = proc::sample(o.pid);
            report.server = server;
            return Ok(report);
        }
        if o.target == Target::Role && o.mode == Mode::Herald {
            self.grant_roles().await?;
        }
        let ramp = Instant::now();
        let streams = self.open_all(None).await;
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
        let publish = Instant::now();
        let sent = self.publish_all(o.broadcasts, o.rate).await;
        report.publish_seconds = publish.elapsed().as_secs_f64();
        report.broadcasts_sent = sent.len();
        report.broadcasts_failed = o.broadcasts - sent.len();
        let expected = expected_per_broadcast.len() as u64 * sent.len() as u64;
        self.wait_for(|| self.counters.received.load(Ordering::Relaxed) >= expected, o.wait, "deliveries")
            .await;
        report.records_committed_ms = self.records_committed(&sent, expected_per_broadcast.len()).await;
        self.score(&mut report, &streams.logs, &sent, &expected_per_broadcast);

        if let Some(missed) = o.storm_missed {
            report.storm = Some(self.storm(streams, missed).await);
        } else {
            streams.stop.cancel();
        }
        server.after = proc::sample(o.pid);
        report.server = server;
        Ok(report)
    }

    fn user(&self, i: usize) -> String {
        format!("{}{i:06}", self.opts.user_prefix)
    }

    /// Indexes of the streams each broadcast is meant for.
    fn audience(&self, held: usize) -> Vec<usize> {
        let n = if self.opts.target == Target::Selected { held.min(1_000) } else { held };
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

    async fn grant_roles(&self) -> anyhow::Result<()> {
        let admin = self.token("bench-admin", &["ADMIN"]);
        let gate = Arc::new(Semaphore::new(32));
        let mut tasks = Vec::new();
        for i in 0..self.opts.streams {
            let url = format!("{}/api/admin/users/{}", self.opts.url, self.user(i));
            let (http, admin, gate) = (self.http.clone(), admin.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await;
                let mut req = http.put(url).json(&json!({"roles": ["BENCH"]}));
                if let Some(t) = admin {
                    req = req.bearer_auth(t);
                }
                req.send().await.map(|r| r.status().is_success()).unwrap_or(false)
            }));
        }
        for t in tasks {
            if !t.await.unwrap_or(false) {
                bail!("could not give the bench users role BENCH");
            }
        }
        Ok(())
    }

    /// Opens every stream (bounded concurrency) and waits until each is established or failed.
    async fn open_all(&self, resume: Option<&[Option<String>]>) -> Streams {
        let o = &self.opts;
        let stop = CancellationToken::new();
        let gate = Arc::new(Semaphore::new(o.concurrency.max(1)));
        let mut logs = Vec::with_capacity(o.streams);
        let mut waits = Vec::with_capacity(o.streams);
        for i in 0..o.streams {
            let log = Arc::new(StreamLog::default());
            logs.push(log.clone());
            let (tx, rx) = oneshot::channel();
            let spec = StreamSpec {
                server: self.server,
                local: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % o.source_ips.clamp(1, 250)) as u8)),
                path: self.stream_path(i),
                bearer: self.token(&self.user(i), &["BENCH"]),
                last_event_id: resume.and_then(|r| r.get(i).cloned().flatten()),
            };
            let permit = gate.clone().acquire_owned().await.ok();
            let (counters, stop) = (self.counters.clone(), stop.child_token());
            let greeting = o.mode == Mode::Herald;
            tokio::spawn(client::hold(spec, log, counters, greeting, tx, stop));
            waits.push(tokio::spawn(async move {
                let outcome = rx.await.unwrap_or_else(|_| Err("stream task ended".into()));
                drop(permit);
                outcome
            }));
            if o.progress && (i + 1) % 1_000 == 0 {
                eprintln!(
                    "[bench] {} streams requested, {} open",
                    i + 1,
                    self.counters.open.load(Ordering::Relaxed)
                );
            }
        }
        let mut held = 0;
        let mut failures: HashMap<String, usize> = HashMap::new();
        for w in waits {
            match w.await {
                Ok(Ok(())) => held += 1,
                Ok(Err(reason)) => *failures.entry(reason).or_default() += 1,
                Err(e) => *failures.entry(e.to_string()).or_default() += 1,
            }
        }
        if o.progress || !failures.is_empty() {
            eprintln!("[bench] {held} streams held, {} failed {failures:?}", o.streams - held);
        }
        Streams { logs, stop, held, failed: o.streams - held }
    }

    fn stream_path(&self, i: usize) -> String {
        match self.opts.mode {
            Mode::Herald if self.opts.jwt_secret.is_some() => "/api/user/sse/connect".to_owned(),
            Mode::Herald => format!("/api/user/sse/connect?userId={}", self.user(i)),
            Mode::Nchan => self.opts.sub_path.clone(),
        }
    }

    /// Publishes `count` broadcasts at `rate` per second.
    async fn publish_all(&self, count: usize, rate: f64) -> Vec<Sent> {
        let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let admin = self.token("bench-admin", &["ADMIN"]);
        let mut tasks = Vec::with_capacity(count);
        for k in 0..count {
            ticker.tick().await;
            let (req, local_id) = self.create_request(k, admin.as_deref());
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let response = req.send().await.ok()?;
                let answered_ms = started.elapsed().as_secs_f64() * 1000.0;
                if !response.status().is_success() {
                    eprintln!("[bench] publish failed: {}", response.status());
                    return None;
                }
                let id = match local_id {
                    Some(id) => id,
                    None => response.json::<Value>().await.ok()?["id"].as_i64()?,
                };
                Some(Sent { id, started, answered_ms })
            }));
            if self.opts.progress && (k + 1) % 100 == 0 {
                eprintln!(
                    "[bench] {} broadcasts published, {} received",
                    k + 1,
                    self.counters.received.load(Ordering::Relaxed)
                );
            }
        }
        let mut sent = Vec::with_capacity(count);
        for t in tasks {
            if let Ok(Some(one)) = t.await {
                sent.push(one);
            }
        }
        sent
    }

    fn create_request(&self, k: usize, admin: Option<&str>) -> (reqwest::RequestBuilder, Option<i64>) {
        let filler = "x".repeat(self.opts.content_bytes.max(1));
        match self.opts.mode {
            Mode::Nchan => {
                let body = json!({"broadcastId": k as i64 + 1, "content": filler}).to_string();
                (
                    self.http.post(format!("{}{}", self.opts.url, self.opts.pub_path)).body(body),
                    Some(k as i64 + 1),
                )
            }
            Mode::Herald => {
                let (target_type, ids): (&str, Vec<String>) = match self.opts.target {
                    Target::All => ("ALL", vec![]),
                    Target::Role => ("ROLE", vec!["BENCH".into()]),
                    Target::Selected => {
                        ("SELECTED", (0..self.opts.streams.min(1_000)).map(|i| self.user(i)).collect())
                    }
                };
                let body = json!({"senderId": "bench", "content": filler, "targetType": target_type, "targetIds": ids});
                let mut req = self.http.post(format!("{}/api/admin/broadcasts", self.opts.url)).json(&body);
                if let Some(t) = admin {
                    req = req.bearer_auth(t);
                }
                (req, None)
            }
        }
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

    /// Polls the stats of the last broadcast until its records show every recipient delivered.
    async fn records_committed(&self, sent: &[Sent], audience: usize) -> Option<f64> {
        if self.opts.mode != Mode::Herald {
            return None;
        }
        let last = sent.iter().max_by_key(|s| s.started)?;
        let (last_id, last_start) = (last.id, last.started);
        let admin = self.token("bench-admin", &["ADMIN"]);
        let deadline = Instant::now() + self.opts.wait;
        while Instant::now() < deadline {
            let mut req = self.http.get(format!("{}/api/admin/broadcasts/{last_id}/stats", self.opts.url));
            if let Some(t) = &admin {
                req = req.bearer_auth(t);
            }
            if let Ok(v) = req.send().await.ok()?.json::<Value>().await {
                if v["totalDelivered"].as_u64().unwrap_or(0) >= audience as u64 {
                    return Some(last_start.elapsed().as_secs_f64() * 1000.0);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    fn score(&self, report: &mut Report, logs: &[Arc<StreamLog>], sent: &[Sent], audience: &[usize]) {
        let started: HashMap<i64, Instant> = sent.iter().map(|s| (s.id, s.started)).collect();
        let meant: HashSet<usize> = audience.iter().copied().collect();
        let mut latencies = Vec::new();
        let mut last: HashMap<i64, Instant> = HashMap::new();
        for (i, log) in logs.iter().enumerate() {
            let receipts = log.receipts.lock().unwrap_or_else(|e| e.into_inner());
            let mut seen = HashSet::new();
            for (bid, at) in receipts.iter() {
                let Some(t0) = started.get(bid) else { continue };
                if !seen.insert(*bid) {
                    report.duplicates += 1;
                    continue;
                }
                if meant.contains(&i) {
                    report.delivered_pairs += 1;
                    latencies.push(at.duration_since(*t0).as_secs_f64() * 1000.0);
                    let entry = last.entry(*bid).or_insert(*at);
                    *entry = (*entry).max(*at);
                }
            }
        }
        report.expected_pairs = audience.len() as u64 * sent.len() as u64;
        report.missing_pairs = report.expected_pairs.saturating_sub(report.delivered_pairs);
        report.latency_ms = Percentiles::of(latencies);
        report.create_ms = Percentiles::of(sent.iter().map(|s| s.answered_ms).collect());
        report.last_receipt_ms = Percentiles::of(
            last.iter().map(|(bid, at)| at.duration_since(started[bid]).as_secs_f64() * 1000.0).collect(),
        );
    }

    /// Drops every stream at once, publishes `missed` broadcasts, reconnects everything with
    /// `Last-Event-ID` and times until every stream has all the missed broadcasts.
    async fn storm(&self, streams: Streams, missed: usize) -> Storm {
        let resume: Vec<Option<String>> = streams
            .logs
            .iter()
            .map(|l| l.last_id.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        streams.stop.cancel();
        self.wait_for(|| self.counters.open.load(Ordering::Relaxed) == 0, self.opts.wait, "streams to close")
            .await;
        let sent = self.publish_all(missed, 1_000.0).await;
        let before = self.counters.received.load(Ordering::Relaxed);
        let started = Instant::now();
        let again = self.open_all(Some(&resume)).await;
        let want = before + (again.held * sent.len()) as u64;
        let done = self
            .wait_for(|| self.counters.received.load(Ordering::Relaxed) >= want, self.opts.wait, "catch-up")
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let ids: HashSet<i64> = sent.iter().map(|s| s.id).collect();
        let caught_up = again
            .logs
            .iter()
            .filter(|l| {
                let got: HashSet<i64> =
                    l.receipts.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|r| r.0).collect();
                ids.is_subset(&got)
            })
            .count();
        again.stop.cancel();
        Storm {
            streams: streams.held,
            reconnected: again.held,
            missed_broadcasts: sent.len(),
            caught_up,
            seconds: (done && caught_up == streams.held).then_some(seconds),
        }
    }
}

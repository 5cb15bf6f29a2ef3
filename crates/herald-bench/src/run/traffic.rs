//! Traffic: granting the role audience, opening the streams, publishing.

use super::*;

/// At most this many receipts reserved per stream (a long series grows its logs as before).
const MAX_RESERVED: usize = 1024;

/// A `SELECTED` broadcast lists the first this many users.
pub(super) const SELECTED_MAX: usize = 1_000;

impl Bench {
    pub(super) async fn grant_roles(&self) -> anyhow::Result<()> {
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
    /// Each stream meant to receive the coming broadcasts gets room for `receipts` of them.
    pub(super) async fn open_all(&self, resume: Option<&[Option<String>]>, receipts: usize) -> Streams {
        let o = &self.opts;
        let mut holders = Holders::default();
        let gate = Arc::new(Semaphore::new(o.concurrency.max(1)));
        let mut logs = Vec::with_capacity(o.streams);
        let mut waits = Vec::with_capacity(o.streams);
        let shared = self.h2_connections().await;
        for i in 0..o.streams {
            let meant = o.target != Target::Selected || i < SELECTED_MAX;
            let log = Arc::new(StreamLog::expecting(if meant { receipts.min(MAX_RESERVED) } else { 0 }));
            logs.push(log.clone());
            let (tx, rx) = oneshot::channel();
            let transport = match (&shared, &self.tls) {
                (Some((conns, per)), _) => {
                    conns.get(i / per).cloned().map_or(Transport::Plain, Transport::H2)
                }
                (None, Some(tls)) => Transport::Tls(tls.h1.clone()),
                (None, None) => Transport::Plain,
            };
            let spec = StreamSpec {
                server: self.stream_servers[i % self.stream_servers.len()],
                transport,
                local: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % o.source_ips.clamp(1, 250)) as u8)),
                path: self.stream_path(i),
                bearer: self.token(&self.user(i), &["BENCH"]),
                last_event_id: resume.and_then(|r| r.get(i).cloned().flatten()),
            };
            let permit = gate.clone().acquire_owned().await.ok();
            let counters = self.counters.clone();
            let greeting = o.mode == Mode::Herald;
            holders.push(tokio::spawn(client::hold(spec, log, counters, greeting, tx)).abort_handle());
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
        Streams { logs, holders, held, failed: o.streams - held }
    }

    /// With `--http2 N`: the shared connections (one per N streams) and N.
    async fn h2_connections(&self) -> Option<(Vec<client::SendH2>, usize)> {
        let per = self.opts.http2?.max(1);
        let mut conns = Vec::new();
        for c in 0..self.opts.streams.div_ceil(per) {
            let local =
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (c % self.opts.source_ips.clamp(1, 250)) as u8));
            match client::h2_connection(self.server, local, self.tls.as_ref().map(|t| &t.h2)).await {
                Ok(send) => conns.push(send),
                Err(e) => eprintln!("[bench] HTTP/2 connection {c} failed: {e}"),
            }
        }
        Some((conns, per))
    }

    pub(super) fn stream_path(&self, i: usize) -> String {
        match self.opts.mode {
            Mode::Herald if self.opts.jwt_secret.is_some() => "/api/user/sse/connect".to_owned(),
            Mode::Herald => format!("/api/user/sse/connect?userId={}", self.user(i)),
            Mode::Nchan => self.opts.sub_path.clone(),
        }
    }

    /// Publishes `count` broadcasts at `rate` per second.
    pub(super) async fn publish_all(&self, count: usize, rate: f64) -> Vec<Sent> {
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

    pub(super) fn create_request(
        &self,
        k: usize,
        admin: Option<&str>,
    ) -> (reqwest::RequestBuilder, Option<i64>) {
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
                        ("SELECTED", (0..self.opts.streams.min(SELECTED_MAX)).map(|i| self.user(i)).collect())
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
}

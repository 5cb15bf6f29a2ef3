//! Measuring: when the delivery records were committed, scoring every (stream, broadcast) pair,
//! and the reconnect storm.

use super::*;

impl Bench {
    /// Polls the stats of the last broadcast until its records show every recipient delivered.
    pub(super) async fn records_committed(&self, sent: &[Sent], audience: usize) -> Option<f64> {
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

    pub(super) fn score(
        &self,
        report: &mut Report,
        logs: &[Arc<StreamLog>],
        sent: &[Sent],
        audience: &[usize],
    ) {
        let started: HashMap<i64, Instant> = sent.iter().map(|s| (s.id, s.started)).collect();
        let meant: HashSet<usize> = audience.iter().copied().collect();
        let mut latencies = Vec::new();
        let mut first: HashMap<i64, Instant> = HashMap::new();
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
                    let entry = first.entry(*bid).or_insert(*at);
                    *entry = (*entry).min(*at);
                    let entry = last.entry(*bid).or_insert(*at);
                    *entry = (*entry).max(*at);
                }
            }
        }
        report.expected_pairs = audience.len() as u64 * sent.len() as u64;
        report.missing_pairs = report.expected_pairs.saturating_sub(report.delivered_pairs);
        report.latency_ms = Percentiles::of(latencies);
        report.create_ms = Percentiles::of(sent.iter().map(|s| s.answered_ms).collect());
        let ms = |bid: &i64, at: &Instant| at.duration_since(started[bid]).as_secs_f64() * 1000.0;
        let since_create = |times: &HashMap<i64, Instant>| {
            Percentiles::of(times.iter().map(|(bid, at)| ms(bid, at)).collect())
        };
        report.first_receipt_ms = since_create(&first);
        report.last_receipt_ms = since_create(&last);
        report.broadcasts = sent
            .iter()
            .map(|s| BroadcastTimes {
                create_ms: s.answered_ms,
                first_ms: first.get(&s.id).map(|at| ms(&s.id, at)),
                last_ms: last.get(&s.id).map(|at| ms(&s.id, at)),
            })
            .collect();
    }

    /// Drops every stream at once, publishes `missed` broadcasts, reconnects everything with
    /// `Last-Event-ID` and times until every stream has all the missed broadcasts.
    pub(super) async fn storm(&self, streams: Streams, missed: usize) -> Storm {
        let resume: Vec<Option<String>> = streams
            .logs
            .iter()
            .map(|l| l.last_id.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        streams.holders.stop();
        self.wait_for(|| self.counters.open.load(Ordering::Relaxed) == 0, self.opts.wait, "streams to close")
            .await;
        let sent = self.publish_all(missed, 1_000.0).await;
        let before = self.counters.received.load(Ordering::Relaxed);
        let started = Instant::now();
        let again = self.open_all(Some(&resume), missed).await;
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
        again.holders.stop();
        Storm {
            streams: streams.held,
            reconnected: again.held,
            missed_broadcasts: sent.len(),
            caught_up,
            seconds: (done && caught_up == streams.held).then_some(seconds),
        }
    }
}

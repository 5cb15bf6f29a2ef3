//! The numbers a run produces: a human summary and one JSON line.

use crate::proc::Usage;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub count: usize,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (milliseconds).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[(((values.len() as f64) * q).ceil() as usize).clamp(1, values.len()) - 1];
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: values[values.len() - 1],
            count: values.len(),
        }
    }
}

/// One broadcast's times in ms, each from its create request being sent: until the answer, the
/// first stream and the last stream had it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct BroadcastTimes {
    pub create_ms: f64,
    pub first_ms: Option<f64>,
    pub last_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Server {
    pub before: Option<Usage>,
    pub holding: Option<Usage>,
    pub after: Option<Usage>,
    /// (holding − before) / streams held.
    pub rss_per_stream_kib: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Storm {
    pub streams: usize,
    pub reconnected: usize,
    pub missed_broadcasts: usize,
    pub caught_up: usize,
    /// From the moment all streams were dropped and reconnecting began until every stream had
    /// received every missed broadcast.
    pub seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub mode: String,
    pub streams_requested: usize,
    pub streams_held: usize,
    pub streams_failed: usize,
    pub ramp_seconds: f64,
    pub broadcasts_sent: usize,
    pub broadcasts_failed: usize,
    pub publish_seconds: f64,
    pub expected_pairs: u64,
    pub delivered_pairs: u64,
    pub missing_pairs: u64,
    pub duplicates: u64,
    /// Create request sent → its response received, per broadcast, in ms.
    pub create_ms: Percentiles,
    /// Create request sent → event received, per (stream, broadcast) pair, in ms.
    pub latency_ms: Percentiles,
    /// Create request sent → the first stream received it, per broadcast, in ms: what the
    /// server takes before its fan-out starts.
    pub first_receipt_ms: Percentiles,
    /// Create request sent → the last stream received it, per broadcast, in ms.
    pub last_receipt_ms: Percentiles,
    /// Each broadcast created, in the order sent: which of them made the tail.
    pub broadcasts: Vec<BroadcastTimes>,
    /// Last create request sent → every delivery record committed (from the stats endpoint), in ms.
    pub records_committed_ms: Option<f64>,
    pub storm: Option<Storm>,
    pub stalled: Option<crate::stalled::Stalled>,
    pub server: Server,
}

impl fmt::Display for Storm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.seconds.map_or("not all caught up".to_owned(), |t| format!("{t:.2} s"));
        write!(
            f,
            "reconnect storm      {} of {} streams reconnected, {} caught up on {} missed broadcasts: {secs}",
            self.reconnected, self.streams, self.caught_up, self.missed_broadcasts
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |x: &Percentiles| {
            format!("p50 {:.1} / p90 {:.1} / p99 {:.1} / max {:.1} ms", x.p50, x.p90, x.p99, x.max)
        };
        writeln!(f, "mode                 {}", self.mode)?;
        writeln!(
            f,
            "streams              {} held, {} failed of {} (ramp {:.1} s)",
            self.streams_held, self.streams_failed, self.streams_requested, self.ramp_seconds
        )?;
        writeln!(
            f,
            "broadcasts           {} sent, {} failed in {:.2} s",
            self.broadcasts_sent, self.broadcasts_failed, self.publish_seconds
        )?;
        writeln!(
            f,
            "deliveries           {} of {} pairs, {} missing, {} duplicates",
            self.delivered_pairs, self.expected_pairs, self.missing_pairs, self.duplicates
        )?;
        writeln!(f, "create answered      {}", p(&self.create_ms))?;
        writeln!(f, "latency              {}", p(&self.latency_ms))?;
        writeln!(f, "first stream         {}", p(&self.first_receipt_ms))?;
        writeln!(f, "last stream          {}", p(&self.last_receipt_ms))?;
        if let Some(ms) = self.records_committed_ms {
            writeln!(f, "records committed    {ms:.0} ms after the last create request")?;
        }
        if let Some(s) = &self.storm {
            writeln!(f, "{s}")?;
        }
        if let Some(s) = &self.stalled {
            writeln!(f, "{s}")?;
        }
        let u = |u: &Option<Usage>| {
            u.map_or("n/a".to_owned(), |u| format!("{} KiB, {:.2} s CPU", u.rss_kib, u.cpu_seconds))
        };
        writeln!(
            f,
            "server               before {} | holding {} | after {}",
            u(&self.server.before),
            u(&self.server.holding),
            u(&self.server.after)
        )?;
        if let Some(per) = self.server.rss_per_stream_kib {
            writeln!(f, "memory per stream    {per:.2} KiB")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max, p.count), (50.0, 90.0, 99.0, 100.0, 100));
        assert_eq!(Percentiles::of(vec![]).count, 0);
    }
}

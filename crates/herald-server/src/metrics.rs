//! Counters the server updates as it works, rendered as Prometheus text at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        /// Monotonic counters; every one is updated on the path it names.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(pub $name: AtomicU64,)*
            /// Streams refused, by [`Rejection`].
            streams_rejected: [AtomicU64; Rejection::ALL.len()],
        }

        impl Metrics {
            fn write_counters(&self, out: &mut String) {
                $(
                    let _ = writeln!(out, "# HELP herald_{} {}", stringify!($name), $help);
                    let _ = writeln!(out, "# TYPE herald_{} counter", stringify!($name));
                    let _ = writeln!(out, "herald_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
            }
        }
    };
}

counters! {
    broadcasts_created_total: "Broadcasts accepted by the admin API.",
    events_relayed_total: "Events moved from the outbox into the log and published.",
    events_dispatched_total: "Events this node's hub handed to its streams.",
    message_deliveries_total: "MESSAGE events handed to users' streams (one per user and broadcast).",
    streams_opened_total: "SSE streams accepted.",
    stream_profiles_from_hub_total: "Stream connects that took the user's profile from this node's hub instead of the directory (admitted or not).",
    streams_closed_slow_total: "SSE streams closed because their queue was full.",
    delivery_records_written_total: "Per-user delivery records committed.",
    replays_resync_total: "Reconnects answered with RESYNC.",
    events_read_from_log_total: "Events the feed read from the database because the bus missed them or was late.",
    dead_letters_kept_total: "Bus records this node could not read, kept as dead letters.",
    dead_letters_redriven_total: "Dead letters redriven into the log.",
    dead_letters_redrive_failed_total: "Dead letter redrives that failed (the letter stays).",
    dead_letters_purged_total: "Dead letters deleted without delivery.",
}

/// Why a stream was refused: the label of `herald_streams_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `connects_per_ip_per_minute`.
    RateLimit,
    /// `max_connections_per_ip`, for streams forwarded by a trusted proxy.
    PerIp,
    /// `max_connections_per_user`.
    UserLimit,
    /// `max_connections`.
    NodeFull,
    ShuttingDown,
}

impl Rejection {
    const ALL: [Self; 5] =
        [Self::RateLimit, Self::PerIp, Self::UserLimit, Self::NodeFull, Self::ShuttingDown];

    fn label(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::PerIp => "per_ip_connections",
            Self::UserLimit => "user_limit",
            Self::NodeFull => "node_full",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

impl Metrics {
    pub fn rejected(&self, why: Rejection) {
        self.streams_rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn write_rejections(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP herald_streams_rejected_total SSE streams refused, by reason.");
        let _ = writeln!(out, "# TYPE herald_streams_rejected_total counter");
        for why in Rejection::ALL {
            let n = self.streams_rejected[why as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "herald_streams_rejected_total{{reason=\"{}\"}} {n}", why.label());
        }
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition, with the given gauges appended.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        self.write_counters(&mut out);
        self.write_rejections(&mut out);
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP herald_{name} {help}");
            let _ = writeln!(out, "# TYPE herald_{name} gauge");
            let _ = writeln!(out, "herald_{name} {value}");
        }
        out
    }
}

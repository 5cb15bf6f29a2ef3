//! Counters the server updates as it works, rendered as Prometheus text at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        /// Monotonic counters; every one is updated on the path it names.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(pub $name: AtomicU64,)*
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
    streams_rejected_total: "SSE streams refused by a connection limit.",
    streams_closed_slow_total: "SSE streams closed because their queue was full.",
    delivery_records_written_total: "Per-user delivery records committed.",
    replays_resync_total: "Reconnects answered with RESYNC.",
}

impl Metrics {
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
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP herald_{name} {help}");
            let _ = writeln!(out, "# TYPE herald_{name} gauge");
            let _ = writeln!(out, "herald_{name} {value}");
        }
        out
    }
}

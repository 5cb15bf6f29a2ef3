//! The server's one typed configuration. The CLI layers defaults < TOML file < `HERALD_*`
//! environment < flags into it; the server only reads it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    Memory,
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    None,
    Jwt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// `sqlite://path` (embedded) or `postgres://…`.
    pub database_url: String,
    pub bus: BusKind,
    pub kafka_brokers: Option<String>,
    pub kafka_topic: String,
    pub auth: AuthMode,
    /// This node's name in stats and logs; host name + port when empty.
    pub node_id: Option<String>,
    pub max_connections_per_user: usize,
    /// Open streams one node accepts in total.
    pub max_connections: usize,
    #[serde(with = "human_duration")]
    pub heartbeat_interval: Duration,
    /// The reconnect delay announced in the `retry:` line.
    #[serde(with = "human_duration")]
    pub sse_retry: Duration,
    /// Frames queued per stream before a slow stream is closed.
    pub stream_queue: usize,
    /// Recent events kept in memory for `Last-Event-ID` replay.
    pub replay_window: usize,
    /// Upper bound on the bytes the replay window holds.
    pub replay_window_bytes: usize,
    /// How long the event log keeps events for replay from the database.
    #[serde(with = "human_duration")]
    pub event_retention: Duration,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How often buffered delivery records are written.
    #[serde(with = "human_duration")]
    pub delivery_flush_interval: Duration,
    /// How long graceful shutdown waits for streams and requests to finish.
    #[serde(with = "human_duration")]
    pub shutdown_grace: Duration,
    pub demo: bool,
    pub log_format: LogFormat,
    /// Time-to-live of the leader lease: a dead leader is replaced within about this long.
    #[serde(with = "human_duration")]
    pub lease_ttl: Duration,
    /// PostgreSQL connections this node may open.
    pub db_max_connections: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://data/herald.db".into(),
            bus: BusKind::Memory,
            kafka_brokers: None,
            kafka_topic: "herald.events".into(),
            auth: AuthMode::None,
            node_id: None,
            max_connections_per_user: 4,
            max_connections: 18_000,
            heartbeat_interval: Duration::from_secs(30),
            sse_retry: Duration::from_millis(3_000),
            stream_queue: 256,
            replay_window: 10_000,
            replay_window_bytes: 32 * 1024 * 1024,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            body_limit: 64 * 1024,
            delivery_flush_interval: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(5),
            demo: false,
            log_format: LogFormat::Text,
            lease_ttl: Duration::from_secs(5),
            db_max_connections: 16,
        }
    }
}

impl Config {
    /// Rejects settings the server cannot run with, naming the key.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("max_connections_per_user", self.max_connections_per_user),
            ("max_connections", self.max_connections),
            ("stream_queue", self.stream_queue),
            ("body_limit", self.body_limit),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{key} must be greater than 0"));
        }
        if self.heartbeat_interval.is_zero() {
            return Err("heartbeat_interval must be greater than 0".into());
        }
        if self.bus == BusKind::Kafka {
            return Err("bus = kafka is not available in this build yet; use bus = memory".into());
        }
        if self.auth == AuthMode::Jwt {
            return Err("auth = jwt is not available in this build yet; use auth = none".into());
        }
        if self.lease_ttl < Duration::from_millis(300) {
            return Err("lease_ttl must be at least 300ms".into());
        }
        if self.db_max_connections < 2 {
            return Err("db_max_connections must be at least 2".into());
        }
        if !["sqlite:", "postgres:", "postgresql:"].iter().any(|s| self.database_url.starts_with(s)) {
            return Err(format!(
                "database_url '{}' is not supported: use sqlite://path or postgres://user@host/db",
                self.database_url
            ));
        }
        Ok(())
    }
}

/// Durations as human text ("30s", "1m 30s", "250ms") in TOML.
pub mod human_duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

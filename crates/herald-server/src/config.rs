//! The server's one typed configuration. The CLI layers defaults < TOML file < `HERALD_*`
//! environment < flags into it; the server only reads it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A secret value: `Debug` and logs never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

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

    /// Allow `auth = none` on a non-loopback listen address.
    pub insecure_allow_remote: bool,
    /// HS256 shared secret (auth = jwt).
    pub jwt_secret: Option<Secret>,
    /// PEM file with the RS256 or ES256 public key (auth = jwt); reloaded on SIGHUP.
    pub jwt_public_key_file: Option<PathBuf>,
    /// JWKS file with public keys chosen by `kid` (auth = jwt); reloaded on SIGHUP.
    pub jwt_jwks_file: Option<PathBuf>,
    /// Required `iss`, when set.
    pub jwt_issuer: Option<String>,
    /// Required `aud`, when set.
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(with = "human_duration")]
    pub jwt_leeway: Duration,
    /// Claim holding the roles (a dotted path such as `realm_access.roles` reaches nested claims).
    pub jwt_roles_claim: String,
    /// Claim holding the products.
    pub jwt_products_claim: String,
    /// Cookie that may carry the token.
    pub jwt_cookie: String,

    /// Stream connects one client IP may make per rate window.
    pub connects_per_ip_per_minute: u32,
    /// Broadcasts one admin may create per rate window.
    pub broadcasts_per_admin_per_minute: u32,
    /// The window of the rate limits ("per minute" unless changed).
    #[serde(with = "human_duration")]
    pub rate_limit_window: Duration,
    /// Proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Time a client has to send its request headers (slow-loris protection).
    #[serde(with = "human_duration")]
    pub header_timeout: Duration,
    /// Largest request head (request line and headers) in bytes.
    pub max_header_bytes: usize,
    /// Most request headers accepted.
    pub max_headers: usize,
    /// Time a client has to send a whole request body (408 beyond).
    #[serde(with = "human_duration")]
    pub body_timeout: Duration,
    /// How long a stream may accept no bytes while it has bytes to send before it is closed.
    #[serde(with = "human_duration")]
    pub send_timeout: Duration,
    /// Open connections one client address may hold (peers in `trusted_proxies` are counted by
    /// the forwarded address of each stream instead).
    pub max_connections_per_ip: usize,
    /// Bearer token `/metrics` requires, when set.
    pub metrics_token: Option<Secret>,
    /// Origins allowed by CORS; empty means same-origin only. `*` allows any (not with credentials).
    pub cors_allowed_origins: Vec<String>,
    /// Whether CORS allows credentials (cookies, Authorization).
    pub cors_allow_credentials: bool,
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
            insecure_allow_remote: false,
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway: Duration::from_secs(30),
            jwt_roles_claim: "roles".into(),
            jwt_products_claim: "products".into(),
            jwt_cookie: "herald_token".into(),
            connects_per_ip_per_minute: 300,
            broadcasts_per_admin_per_minute: 60,
            rate_limit_window: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            body_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(20),
            max_connections_per_ip: 512,
            metrics_token: None,
            cors_allowed_origins: Vec::new(),
            cors_allow_credentials: false,
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
            ("max_connections_per_ip", self.max_connections_per_ip),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{key} must be greater than 0"));
        }
        let durations = [
            ("heartbeat_interval", self.heartbeat_interval),
            ("body_timeout", self.body_timeout),
            ("send_timeout", self.send_timeout),
        ];
        if let Some((key, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("{key} must be greater than 0"));
        }
        if self.bus == BusKind::Kafka {
            return Err("bus = kafka is not available in this build yet; use bus = memory".into());
        }
        self.check_auth()?;
        self.check_limits()?;
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

impl Config {
    fn check_auth(&self) -> Result<(), String> {
        match self.auth {
            AuthMode::None => {
                if !self.insecure_allow_remote && !is_loopback(&self.listen) {
                    return Err(format!(
                        "auth = none trusts the userId parameter, so it only listens on loopback; {} is not \
                         loopback. Use auth = jwt, or pass --insecure-allow-remote if a trusted proxy authenticates",
                        self.listen
                    ));
                }
            }
            AuthMode::Jwt => {
                let sources = [
                    self.jwt_secret.is_some(),
                    self.jwt_public_key_file.is_some(),
                    self.jwt_jwks_file.is_some(),
                ];
                if sources.iter().filter(|s| **s).count() != 1 {
                    return Err(
                        "auth = jwt needs exactly one of jwt_secret, jwt_public_key_file, jwt_jwks_file"
                            .into(),
                    );
                }
                if self.jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
                    return Err("jwt_secret must be at least 32 characters".into());
                }
            }
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), String> {
        if self.rate_limit_window.is_zero() {
            return Err("rate_limit_window must be greater than 0".into());
        }
        if self.max_header_bytes < 8192 {
            return Err("max_header_bytes must be at least 8192".into());
        }
        if self.max_headers == 0 {
            return Err("max_headers must be greater than 0".into());
        }
        for proxy in &self.trusted_proxies {
            crate::limits::IpNet::parse(proxy).map_err(|e| format!("trusted_proxies: {e}"))?;
        }
        if self.cors_allow_credentials && self.cors_allowed_origins.iter().any(|o| o == "*") {
            return Err("cors_allowed_origins cannot be * when cors_allow_credentials is on".into());
        }
        Ok(())
    }
}

/// Whether a listen address is loopback (`127.0.0.0/8`, `::1`, or `localhost`).
pub fn is_loopback(listen: &str) -> bool {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_none_is_refused_on_a_non_loopback_address_unless_allowed() {
        let mut c = Config { listen: "0.0.0.0:8080".into(), ..Config::default() };
        assert!(c.check().unwrap_err().contains("loopback"));
        c.insecure_allow_remote = true;
        assert!(c.check().is_ok());
        for ok in ["127.0.0.1:8080", "[::1]:8080", "localhost:8080", "127.1.2.3:0"] {
            assert!(is_loopback(ok), "{ok}");
        }
        assert!(!is_loopback("10.0.0.1:80"));
    }

    #[test]
    fn jwt_needs_exactly_one_key_source_and_a_long_secret() {
        let mut c = Config { auth: AuthMode::Jwt, ..Config::default() };
        assert!(c.check().is_err());
        c.jwt_secret = Some(Secret::new("short"));
        assert!(c.check().unwrap_err().contains("32"));
        c.jwt_secret = Some(Secret::new("x".repeat(32)));
        assert!(c.check().is_ok());
        c.jwt_jwks_file = Some("keys.json".into());
        assert!(c.check().is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = Config { jwt_secret: Some(Secret::new("super-secret-value")), ..Config::default() };
        assert!(!format!("{c:?}").contains("super-secret-value"));
    }
}

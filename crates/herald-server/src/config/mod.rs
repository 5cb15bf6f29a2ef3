//! The server's one typed configuration. Each key is declared once, below, with its doc, default
//! and validation; the `Config` struct, the flags and `HERALD_*` variables of the CLI, the keys of
//! the TOML file and the commented file `herald config` prints all come from that declaration (and
//! a test holds the README's configuration table to it). The CLI layers defaults < TOML file <
//! `HERALD_*` environment < flags; the server only reads the result.

mod keys;
mod value;

use keys::config_keys;
pub use keys::Key;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
pub use value::Value;

/// A secret value: `Debug` and logs never show it.
#[derive(Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    Memory,
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    None,
    Jwt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration the server cannot run with; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown key '{0}'")]
    Unknown(String),
    #[error("{key}: {message}")]
    Value { key: String, message: String },
    #[error("{0}")]
    Rule(String),
}

impl ConfigError {
    fn value(key: &str, message: impl Into<String>) -> Self {
        Self::Value { key: key.to_owned(), message: message.into() }
    }
}

fn positive(n: &usize) -> Result<(), String> {
    if *n == 0 {
        Err("must be greater than 0".into())
    } else {
        Ok(())
    }
}

fn nonzero(d: &Duration) -> Result<(), String> {
    if d.is_zero() {
        Err("must be greater than 0".into())
    } else {
        Ok(())
    }
}

config_keys! {
    /// Address to listen on. With auth = "none" keep it on loopback.
    listen: String = "127.0.0.1:8080".into();
    /// sqlite://path (embedded, file and directory created if missing) or
    /// postgres://user:password@host:5432/dbname.
    database_url: String = "sqlite://data/herald.db".into(), check |url: &String| {
        if ["sqlite:", "postgres:", "postgresql:"].iter().any(|s| url.starts_with(s)) {
            Ok(())
        } else {
            Err(format!("'{url}' is not supported: use sqlite://path or postgres://user@host/db"))
        }
    };
    /// PostgreSQL connections this node may open (at least 2).
    db_max_connections: u32 = 16, check |n: &u32| if *n < 2 { Err("must be at least 2".into()) } else { Ok(()) };
    /// Leader lease time-to-live: a dead leader is replaced within about this long (PostgreSQL;
    /// at least 300ms).
    lease_ttl: Duration = Duration::from_secs(5), check |d: &Duration| {
        if *d < Duration::from_millis(300) { Err("must be at least 300ms".into()) } else { Ok(()) }
    };
    /// Event bus: "memory" (one node) or "kafka" (a cluster).
    bus: BusKind = BusKind::Memory;
    /// Kafka bootstrap servers, host:port comma-separated (bus = "kafka").
    kafka_brokers: Option<String> = None, check |list: &Option<String>| {
        list.as_deref().map_or(Ok(()), herald_bus_kafka::check_brokers)
    };
    /// Kafka topic of the events (one partition; dead letters go to "<topic>.dlt").
    kafka_topic: String = "herald.events".into(), check |t: &String| {
        if !t.is_empty() && t.len() <= 240 && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            Ok(())
        } else {
            Err(format!("'{t}' is not a Kafka topic name (letters, digits, . _ -)"))
        }
    };
    /// Create the topic when it is missing (needs the right to create topics).
    kafka_create_topic: bool = true;
    /// Replication factor of a topic Herald creates; -1 uses the broker's default.
    kafka_replication_factor: i32 = -1, check |n: &i32| if *n == 0 || *n < -1 { Err("must be -1 or at least 1".into()) } else { Ok(()) };
    /// Retention of a topic Herald creates (a node reads older events from the database).
    kafka_retention: Duration = Duration::from_secs(24 * 3600), check nonzero;
    /// librdkafka properties, "name=value" comma-separated (security.protocol, sasl.*, ssl.*, ...).
    kafka_properties: Vec<String> = Vec::new(), check |list: &Vec<String>| {
        list.iter().try_for_each(|p| parse_property(p).map(drop))
    };
    /// How long a node waits for the bus to bring a logged event before it reads it from the
    /// database itself (bus = "kafka": live delivery continues while the broker is down).
    bus_fallback_after: Duration = Duration::from_millis(500), check nonzero;
    /// Authentication: "none" trusts the userId parameter (loopback only); "jwt" verifies tokens.
    auth: AuthMode = AuthMode::None;
    /// Allow auth = "none" on a non-loopback address (only behind an authenticating proxy).
    insecure_allow_remote: bool = false;
    /// HS256 shared secret (auth = "jwt"; at least 32 characters).
    jwt_secret: Option<Secret> = None;
    /// PEM file with the RS256 or ES256 public key (auth = "jwt"); re-read on SIGHUP.
    jwt_public_key_file: Option<PathBuf> = None;
    /// JWKS file with public keys chosen by `kid` (auth = "jwt"); re-read on SIGHUP.
    jwt_jwks_file: Option<PathBuf> = None;
    /// Required `iss`, when set.
    jwt_issuer: Option<String> = None;
    /// Required `aud`, when set.
    jwt_audience: Option<String> = None;
    /// Clock skew tolerated on `exp` and `nbf`.
    jwt_leeway: Duration = Duration::from_secs(30);
    /// Claim with the roles; dots reach nested claims ("realm_access.roles").
    jwt_roles_claim: String = "roles".into();
    /// Claim with the products.
    jwt_products_claim: String = "products".into();
    /// Cookie that may carry the token (besides Authorization: Bearer and ?access_token=).
    jwt_cookie: String = "herald_token".into();
    /// Stream connects one client IP may make per rate window (429 beyond).
    connects_per_ip_per_minute: u32 = 300;
    /// Broadcasts one admin may create per rate window (429 beyond).
    broadcasts_per_admin_per_minute: u32 = 60;
    /// The window of both rate limits.
    rate_limit_window: Duration = Duration::from_secs(60), check nonzero;
    /// Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client.
    trusted_proxies: Vec<String> = Vec::new(), check |list: &Vec<String>| {
        list.iter().try_for_each(|p| crate::ipnet::IpNet::parse(p).map(drop))
    };
    /// PEM certificate chain to serve HTTPS with (with tls_key_file); re-read on SIGHUP.
    /// Unset: plain HTTP.
    tls_cert_file: Option<PathBuf> = None;
    /// PEM private key of tls_cert_file (PKCS#8, PKCS#1 or SEC1); re-read on SIGHUP.
    tls_key_file: Option<PathBuf> = None;
    /// HTTP/2 streams a client may open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    http2_max_concurrent_streams: u32 = 250, check |n: &u32| {
        if *n == 0 { Err("must be greater than 0".into()) } else { Ok(()) }
    };
    /// Time a client has to send its request head (slow-loris protection; also the TLS handshake).
    header_timeout: Duration = Duration::from_secs(10), check nonzero;
    /// Largest request head in bytes (431 beyond; at least 8192).
    max_header_bytes: usize = 16 * 1024, check |n: &usize| {
        if *n < 8192 { Err("must be at least 8192".into()) } else { Ok(()) }
    };
    /// Most request headers (431 beyond).
    max_headers: usize = 64, check positive;
    /// Time a client has to send a whole request body (408 beyond, then the connection closes).
    body_timeout: Duration = Duration::from_secs(10), check nonzero;
    /// A stream that accepts no byte for this long while it has bytes to send is closed.
    send_timeout: Duration = Duration::from_secs(20), check nonzero;
    /// Open connections per client address (429 beyond). Peers in trusted_proxies are exempt; the
    /// streams they forward count per forwarded address instead.
    max_connections_per_ip: usize = 512, check positive;
    /// When set, /metrics requires "Authorization: Bearer <metrics_token>".
    metrics_token: Option<Secret> = None;
    /// Origins allowed by CORS, comma-separated; empty means same-origin only.
    cors_allowed_origins: Vec<String> = Vec::new();
    /// Let CORS requests carry cookies and Authorization.
    cors_allow_credentials: bool = false;
    /// This node's id in stream stats and logs; when unset, host name + ":" + port.
    node_id: Option<String> = None;
    /// Open streams per user; the next one gets CONNECTION_LIMIT_REACHED.
    max_connections_per_user: usize = 4, check positive;
    /// Open streams on this node; beyond it connects get 429.
    max_connections: usize = 18_000, check positive;
    /// Interval of HEARTBEAT events (a ':' comment line also goes out every 15 s).
    heartbeat_interval: Duration = Duration::from_secs(30), check nonzero;
    /// Reconnect delay announced in the retry: line.
    sse_retry: Duration = Duration::from_millis(3_000);
    /// Frames queued per stream; a stream whose queue fills up is closed and catches up on
    /// reconnect.
    stream_queue: usize = 256, check positive;
    /// Recent events kept in memory for Last-Event-ID replay.
    replay_window: usize = 10_000;
    /// Upper bound on the bytes the replay window holds.
    replay_window_bytes: usize = 32 * 1024 * 1024;
    /// How long the database event log keeps events for replay (pruned hourly).
    event_retention: Duration = Duration::from_secs(7 * 24 * 3600);
    /// Largest request body in bytes (413 beyond).
    body_limit: usize = 64 * 1024, check positive;
    /// How often buffered delivery records are written.
    delivery_flush_interval: Duration = Duration::from_millis(100);
    /// How long graceful shutdown waits for streams and requests.
    shutdown_grace: Duration = Duration::from_secs(5);
    /// Seed the demo directory user-001..user-010.
    demo: bool = false;
    /// Log format on stderr: "text" or "json" (level from RUST_LOG, default info).
    log_format: LogFormat = LogFormat::Text;
}

impl Config {
    /// Rejects settings the server cannot run with, naming the key.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.check_keys()?;
        if self.bus == BusKind::Kafka {
            if self.kafka_brokers.is_none() {
                return Err(ConfigError::value(
                    "kafka_brokers",
                    "is required with bus = kafka (host:port,...)",
                ));
            }
            if self.database_url.starts_with("sqlite:") {
                return Err(ConfigError::Rule(
                    "bus = kafka needs a database every node shares: set database_url to postgres://...; \
                     SQLite serves one node"
                        .into(),
                ));
            }
        }
        self.check_auth()?;
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError::Rule(
                "tls_cert_file and tls_key_file go together: set both to serve HTTPS, or neither".into(),
            ));
        }
        if self.cors_allow_credentials && self.cors_allowed_origins.iter().any(|o| o == "*") {
            return Err(ConfigError::Rule(
                "cors_allowed_origins cannot be * when cors_allow_credentials is on".into(),
            ));
        }
        Ok(())
    }

    fn check_auth(&self) -> Result<(), ConfigError> {
        match self.auth {
            AuthMode::None if !self.insecure_allow_remote && !is_loopback(&self.listen) => {
                Err(ConfigError::Rule(format!(
                    "auth = none trusts the userId parameter, so it only listens on loopback; {} is not \
                     loopback. Use auth = jwt, or pass --insecure-allow-remote if a trusted proxy authenticates",
                    self.listen
                )))
            }
            AuthMode::None => Ok(()),
            AuthMode::Jwt => {
                let sources =
                    [self.jwt_secret.is_some(), self.jwt_public_key_file.is_some(), self.jwt_jwks_file.is_some()];
                if sources.iter().filter(|s| **s).count() != 1 {
                    return Err(ConfigError::Rule(
                        "auth = jwt needs exactly one of jwt_secret, jwt_public_key_file, jwt_jwks_file".into(),
                    ));
                }
                if self.jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
                    return Err(ConfigError::value("jwt_secret", "must be at least 32 characters"));
                }
                Ok(())
            }
        }
    }

    /// Applies the keys of a TOML file; an unknown key or a bad value is an error naming it.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::Rule(e.to_string()))?;
        table.iter().try_for_each(|(key, value)| self.set_toml(key, value))
    }

    /// The commented default file `herald config` prints: every key with its doc; unset keys
    /// commented out.
    pub fn default_toml() -> String {
        let defaults = Config::default();
        let mut out = String::from(
            "# Herald configuration. Every key can also be set by a HERALD_<KEY> environment variable\n\
             # (upper case) or a --<key> flag (dashes for underscores); flags and variables win over this file.\n",
        );
        for key in KEYS {
            out.push('\n');
            for line in key.doc {
                out.push_str(&format!("#{line}\n"));
            }
            match defaults.get_toml(key.name) {
                Some(value) => out.push_str(&format!("{} = {value}\n", key.name)),
                None => out.push_str(&format!("# {} =\n", key.name)),
            }
        }
        out
    }
}

/// A librdkafka property `name=value`.
pub fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("'{text}' is not name=value")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_none_is_refused_on_a_non_loopback_address_unless_allowed() {
        let mut c = Config { listen: "0.0.0.0:8080".into(), ..Config::default() };
        assert!(c.check().unwrap_err().to_string().contains("loopback"));
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
        assert!(c.check().unwrap_err().to_string().contains("32"));
        c.jwt_secret = Some(Secret::new("x".repeat(32)));
        assert!(c.check().is_ok());
        c.jwt_jwks_file = Some("keys.json".into());
        assert!(c.check().is_err());
    }

    #[test]
    fn kafka_needs_brokers_with_a_valid_syntax_and_postgres() {
        let mut c = Config { bus: BusKind::Kafka, ..Config::default() };
        assert!(c.check().unwrap_err().to_string().starts_with("kafka_brokers: is required"));
        c.set_text("kafka_brokers", "localhost").unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(err.starts_with("kafka_brokers: 'localhost' has no port"), "{err}");
        c.set_text("kafka_brokers", "127.0.0.1:9092").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("postgres://"));
        c.database_url = "postgres://h/db".into();
        assert_eq!(c.check(), Ok(()));
        c.set_text("kafka_properties", "security.protocol").unwrap();
        assert!(c
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("kafka_properties: 'security.protocol' is not"));
        c.set_text("kafka_properties", "security.protocol=SASL_SSL,sasl.mechanism=SCRAM-SHA-512").unwrap();
        assert_eq!(parse_property(&c.kafka_properties[1]).unwrap().1, "SCRAM-SHA-512");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = Config { jwt_secret: Some(Secret::new("super-secret-value")), ..Config::default() };
        assert!(!format!("{c:?}").contains("super-secret-value"));
    }

    #[test]
    fn the_printed_default_file_reads_back_as_the_defaults() {
        let mut parsed = Config { listen: "elsewhere".into(), demo: true, ..Config::default() };
        parsed.apply_toml(&Config::default_toml()).unwrap();
        parsed.listen = Config::default().listen;
        parsed.demo = false;
        assert_eq!(parsed, Config::default());
        assert!(Config::default_toml().contains("\n# jwt_secret =\n"), "unset keys are commented out");
    }

    #[test]
    fn a_bad_or_unknown_key_is_an_error_that_names_it() {
        let mut c = Config::default();
        assert_eq!(c.apply_toml("listn = \"x\"").unwrap_err(), ConfigError::Unknown("listn".into()));
        let err = c.set_text("heartbeat_interval", "soon").unwrap_err().to_string();
        assert!(err.starts_with("heartbeat_interval: 'soon' is not a duration"), "{err}");
        c.set_text("stream_queue", "0").unwrap();
        assert_eq!(c.check().unwrap_err().to_string(), "stream_queue: must be greater than 0");
        c.apply_toml("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\ndemo = true").unwrap();
        assert_eq!((c.trusted_proxies.len(), c.demo), (2, true));
    }

    /// The README's configuration table lists exactly the declared keys, in their order, with
    /// their flags, variables and defaults.
    #[test]
    fn the_readme_table_matches_the_declaration() {
        let readme = include_str!("../../../../README.md");
        let section = readme.split("## Configuration").nth(1).expect("a Configuration section");
        let rows: Vec<Vec<String>> = section
            .lines()
            .take_while(|l| !l.starts_with("## "))
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                l.trim_matches('|').split(" | ").map(|c| c.trim().trim_matches('`').to_owned()).collect()
            })
            .filter(|cells: &Vec<String>| cells[0] != "—")
            .collect();
        let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        let declared: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        assert_eq!(names, declared, "README rows vs declared keys");
        let defaults = Config::default();
        for (row, key) in rows.iter().zip(KEYS) {
            assert_eq!(row[1], format!("--{}", key.flag()), "{}", key.name);
            assert_eq!(row[2], key.env(), "{}", key.name);
            let shown = match defaults.get_toml(key.name) {
                None => "unset".to_owned(),
                Some(toml::Value::String(s)) => s,
                Some(toml::Value::Array(a)) if a.is_empty() => "empty".to_owned(),
                Some(other) => other.to_string(),
            };
            assert!(
                row[3].starts_with(&shown),
                "{}: README says {:?}, the default is {shown:?}",
                key.name,
                row[3]
            );
        }
    }
}

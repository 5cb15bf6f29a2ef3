//! The TOML layer of the configuration and the commented default file `herald config` prints.

use anyhow::Context;
use herald_server::Config;
use std::path::Path;

/// Reads `path`, or `herald.toml` when no path is given and that file exists; defaults otherwise.
pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let (path, required) = match path {
        Some(p) => (p, true),
        None => (Path::new("herald.toml"), false),
    };
    if !required && !path.exists() {
        return Ok(Config::default());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid configuration file {}", path.display()))
}

pub const DEFAULT_TOML: &str = r#"# Herald configuration. Every key can also be set by a HERALD_<KEY> environment variable
# (upper case) or a --<key> flag (dashes for underscores); flags and variables win over this file.

# Address to listen on. With auth = "none" keep it on loopback.
listen = "127.0.0.1:8080"

# sqlite://path (embedded, created if missing) or postgres://user:password@host:5432/dbname.
database_url = "sqlite://data/herald.db"
# PostgreSQL connections this node may open.
db_max_connections = 16
# Several nodes may share one PostgreSQL database; the relay and the scheduler run on the one
# holding the leader lease. A dead leader is replaced within about this long.
lease_ttl = "5s"

# Event bus: "memory" (single node).
bus = "memory"
kafka_topic = "herald.events"
# kafka_brokers = "localhost:9092"

# Authentication: "none" trusts the userId parameter (loopback only); "jwt" verifies tokens.
auth = "none"
# auth = "none" on a non-loopback address is refused unless this is on (behind an authenticating proxy).
insecure_allow_remote = false
# auth = "jwt" needs exactly one key source: an HS256 secret (32+ characters), or a PEM public key
# (RS256/ES256), or a JWKS file; key files are re-read on SIGHUP.
# jwt_secret = "change-me-to-a-long-random-string-of-32-chars"
# jwt_public_key_file = "/etc/herald/jwt.pem"
# jwt_jwks_file = "/etc/herald/jwks.json"
# jwt_issuer = "https://idp.example.com/"
# jwt_audience = "herald"
# Clock skew tolerated on exp and nbf.
jwt_leeway = "30s"
# Claims with the roles and products (a dotted path reaches nested claims: "realm_access.roles").
jwt_roles_claim = "roles"
jwt_products_claim = "products"
# Cookie that may carry the token (besides Authorization: Bearer and ?access_token=).
jwt_cookie = "herald_token"

# Abuse limits; over them a request gets 429 with Retry-After.
connects_per_ip_per_minute = 300
broadcasts_per_admin_per_minute = 60
rate_limit_window = "1m"
# Proxies (IPs or CIDRs) whose X-Forwarded-For names the client.
trusted_proxies = []
# Request heads: time to send them, total size, number of headers (431 beyond).
header_timeout = "10s"
max_header_bytes = 16384
max_headers = 64
# Time to send a whole request body (408 beyond).
body_timeout = "10s"
# A stream that accepts no bytes for this long while it has bytes to send is closed.
send_timeout = "20s"
# Open connections per client address (beyond it: 429). Peers in trusted_proxies are exempt; the
# streams they forward are counted per forwarded address instead.
max_connections_per_ip = 512
# When set, /metrics requires "Authorization: Bearer <metrics_token>".
# metrics_token = "a-long-random-string"
# CORS: allowed origins (empty: same-origin only) and whether credentials may be sent.
cors_allowed_origins = []
cors_allow_credentials = false

# This node's id in stats and logs; host name + port when unset.
# node_id = "herald-1"

# Open streams per user; the next one gets CONNECTION_LIMIT_REACHED.
max_connections_per_user = 4
# Open streams on this node; beyond it connects get 429.
max_connections = 18000

# HEARTBEAT event interval (a ':' comment line also goes out every 15 s).
heartbeat_interval = "30s"
# Reconnect delay announced in the retry: line.
sse_retry = "3s"
# Frames queued per stream; a stream whose queue fills up is closed and catches up on reconnect.
stream_queue = 256

# Recent events kept in memory for Last-Event-ID replay (by count and bytes).
replay_window = 10000
replay_window_bytes = 33554432
# How long the event log keeps events for replay from the database.
event_retention = "7days"

# Largest request body in bytes (413 beyond).
body_limit = 65536
# How often buffered delivery records are written.
delivery_flush_interval = "100ms"
# How long graceful shutdown waits for streams and requests.
shutdown_grace = "5s"

# Seed the demo directory user-001..user-010.
demo = false
# Log format: "text" or "json".
log_format = "text"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_file_matches_the_built_in_defaults() {
        let parsed: Config = toml::from_str(DEFAULT_TOML).unwrap();
        let defaults = Config::default();
        assert_eq!(toml::to_string(&parsed).unwrap(), toml::to_string(&defaults).unwrap());
    }

    #[test]
    fn an_unknown_key_is_an_error_that_names_it() {
        let err = toml::from_str::<Config>("listn = \"x\"").unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");
    }
}

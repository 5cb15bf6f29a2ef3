//! The command line: subcommands and the flags of every configuration key. Each flag also reads
//! its `HERALD_*` variable (clap's `env`), and both override the TOML file, which overrides the
//! defaults.

use crate::config_file;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use herald_server::config::{AuthMode, BusKind, LogFormat};
use herald_server::Config;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(name = "herald", version, about = "Herald: broadcast messages to users over Server-Sent Events")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    Serve(Settings),
    /// Create or upgrade the database schema, then exit.
    Migrate(Settings),
    /// Print a commented default configuration file.
    Config,
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// Every configuration key (SPEC 7a). Unset flags leave the file's or the default value.
#[derive(Args, Debug, Default)]
pub struct Settings {
    /// TOML configuration file [default: herald.toml, if present]
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "HERALD_LISTEN")]
    listen: Option<String>,
    /// Database URL: sqlite://path or postgres://user@host/db [default: sqlite://data/herald.db]
    #[arg(long, env = "HERALD_DATABASE_URL")]
    database_url: Option<String>,
    /// Event bus: memory (single node) or kafka [default: memory]
    #[arg(long, env = "HERALD_BUS", value_enum)]
    bus: Option<BusArg>,
    /// Kafka bootstrap servers (bus = kafka)
    #[arg(long, env = "HERALD_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Kafka topic [default: herald.events]
    #[arg(long, env = "HERALD_KAFKA_TOPIC")]
    kafka_topic: Option<String>,
    /// Authentication: none or jwt [default: none]
    #[arg(long, env = "HERALD_AUTH", value_enum)]
    auth: Option<AuthArg>,
    /// This node's id [default: host name + port]
    #[arg(long, env = "HERALD_NODE_ID")]
    node_id: Option<String>,
    /// Open streams allowed per user [default: 4]
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_USER")]
    max_connections_per_user: Option<usize>,
    /// Open streams allowed on this node [default: 18000]
    #[arg(long, env = "HERALD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Interval of HEARTBEAT events [default: 30s]
    #[arg(long, env = "HERALD_HEARTBEAT_INTERVAL", value_parser = duration)]
    heartbeat_interval: Option<Duration>,
    /// Reconnect delay announced to clients [default: 3s]
    #[arg(long, env = "HERALD_SSE_RETRY", value_parser = duration)]
    sse_retry: Option<Duration>,
    /// Frames queued per stream before a slow stream is closed [default: 256]
    #[arg(long, env = "HERALD_STREAM_QUEUE")]
    stream_queue: Option<usize>,
    /// Recent events kept in memory for replay [default: 10000]
    #[arg(long, env = "HERALD_REPLAY_WINDOW")]
    replay_window: Option<usize>,
    /// Upper bound on the bytes the replay window holds [default: 33554432]
    #[arg(long, env = "HERALD_REPLAY_WINDOW_BYTES")]
    replay_window_bytes: Option<usize>,
    /// How long the event log keeps events [default: 7days]
    #[arg(long, env = "HERALD_EVENT_RETENTION", value_parser = duration)]
    event_retention: Option<Duration>,
    /// Largest request body in bytes [default: 65536]
    #[arg(long, env = "HERALD_BODY_LIMIT")]
    body_limit: Option<usize>,
    /// How often delivery records are written [default: 100ms]
    #[arg(long, env = "HERALD_DELIVERY_FLUSH_INTERVAL", value_parser = duration)]
    delivery_flush_interval: Option<Duration>,
    /// How long shutdown waits for streams and requests [default: 5s]
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE", value_parser = duration)]
    shutdown_grace: Option<Duration>,
    /// Seed the demo directory (user-001..user-010)
    #[arg(long, env = "HERALD_DEMO", num_args = 0..=1, default_missing_value = "true")]
    demo: Option<bool>,
    /// Leader lease time-to-live; a dead leader is replaced within about this long [default: 5s]
    #[arg(long, env = "HERALD_LEASE_TTL", value_parser = duration)]
    lease_ttl: Option<Duration>,
    /// PostgreSQL connections this node may open [default: 16]
    #[arg(long, env = "HERALD_DB_MAX_CONNECTIONS")]
    db_max_connections: Option<u32>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "HERALD_LOG_FORMAT", value_enum)]
    log_format: Option<LogArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BusArg {
    Memory,
    Kafka,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AuthArg {
    None,
    Jwt,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogArg {
    Text,
    Json,
}

impl Settings {
    /// defaults < file < environment and flags.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let mut c = config_file::load(self.config.as_deref())?;
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = v; })* };
        }
        set!(
            listen,
            database_url,
            kafka_topic,
            max_connections_per_user,
            max_connections,
            heartbeat_interval
        );
        set!(sse_retry, stream_queue, replay_window, replay_window_bytes, event_retention, body_limit);
        set!(delivery_flush_interval);
        set!(shutdown_grace, demo, lease_ttl, db_max_connections);
        if let Some(v) = self.kafka_brokers {
            c.kafka_brokers = Some(v);
        }
        if let Some(v) = self.node_id {
            c.node_id = Some(v);
        }
        if let Some(v) = self.bus {
            c.bus = match v {
                BusArg::Memory => BusKind::Memory,
                BusArg::Kafka => BusKind::Kafka,
            };
        }
        if let Some(v) = self.auth {
            c.auth = match v {
                AuthArg::None => AuthMode::None,
                AuthArg::Jwt => AuthMode::Jwt,
            };
        }
        if let Some(v) = self.log_format {
            c.log_format = match v {
                LogArg::Text => LogFormat::Text,
                LogArg::Json => LogFormat::Json,
            };
        }
        c.check().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(c)
    }
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config => {
            print!("{}", config_file::DEFAULT_TOML);
            Ok(())
        }
        Command::Migrate(settings) => {
            let config = settings.resolve()?;
            init_logging(config.log_format);
            herald_server::migrate(&config).await?;
            tracing::info!(database = %config.database_url, "schema is up to date");
            Ok(())
        }
        Command::Serve(settings) => {
            let config = settings.resolve()?;
            init_logging(config.log_format);
            if config.auth == AuthMode::None {
                tracing::warn!("auth = none: the userId parameter is trusted; use only on a trusted network");
            }
            let listener = TcpListener::bind(&config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            herald_server::run(config, listener, shutdown_signal()).await?;
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

//! The command line: subcommands and the flags of every configuration key. Each flag also reads
//! its `HERALD_*` variable (clap's `env`), and both override the TOML file, which overrides the
//! defaults.

use crate::{client, config_file};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use herald_server::config::{AuthMode, BusKind, LogFormat, Secret};
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
    /// Mint a development token (HS256) with the configured `jwt_secret`.
    Token(TokenArgs),
    /// Load generator: drive a running Herald (or another SSE server) over real HTTP and SSE.
    Bench(BenchArgs),
    /// Publish a broadcast to a running server.
    Publish(client::publish::PublishArgs),
    /// Follow a user's stream in the terminal, reconnecting after drops.
    Tail(client::tail::TailArgs),
    /// Import or export the user directory.
    Users(client::users::UsersArgs),
    /// List, show, cancel broadcasts and read their counts.
    Broadcasts(client::broadcasts::BroadcastsArgs),
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Base URL of the server under test
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// herald, or nchan (subscribe to --sub-path, publish raw JSON to --pub-path)
    #[arg(long, value_enum, default_value = "herald")]
    mode: BenchMode,
    /// Streams to open, one user each
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Broadcasts to publish
    #[arg(long, default_value_t = 10)]
    broadcasts: usize,
    /// Broadcasts per second
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Audience of each broadcast
    #[arg(long, value_enum, default_value = "all")]
    target: BenchTarget,
    /// Stream connects in flight while ramping up
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Spread streams over 127.0.0.1 .. 127.0.0.N
    #[arg(long, default_value_t = 1)]
    source_ips: usize,
    /// Process id of the server, to report its memory and CPU from /proc
    #[arg(long)]
    pid: Option<u32>,
    /// HS256 secret of a server with auth = jwt (tokens are minted per user)
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Bytes of content per broadcast
    #[arg(long, default_value_t = 64)]
    content_bytes: usize,
    /// How long to wait for deliveries and catch-up
    #[arg(long, default_value = "30s", value_parser = duration)]
    wait: Duration,
    /// Reconnect storm: drop every stream, publish this many broadcasts, reconnect all with Last-Event-ID
    #[arg(long)]
    storm: Option<usize>,
    /// Prefix of the bench user ids
    #[arg(long, default_value = "bench-")]
    user_prefix: String,
    /// nchan mode: subscribe path
    #[arg(long, default_value = "/sub/bench")]
    sub_path: String,
    /// nchan mode: publish path
    #[arg(long, default_value = "/pub/bench")]
    pub_path: String,
    /// No progress lines on stderr
    #[arg(long)]
    quiet: bool,
    /// Stalled readers: publish --broadcasts, then open this many streams that never read and
    /// report the server's memory and when it closed them
    #[arg(long)]
    stalled: Option<usize>,
    /// The Last-Event-ID the stalled streams send [default: none, a fresh connect]
    #[arg(long, requires = "stalled")]
    stalled_resume: Option<i64>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BenchMode {
    Herald,
    Nchan,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BenchTarget {
    All,
    Role,
    Selected,
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// The user id (`sub` claim)
    #[arg(long)]
    sub: String,
    /// Roles, comma-separated (e.g. ADMIN,USER)
    #[arg(long, value_delimiter = ',')]
    roles: Vec<String>,
    /// Products, comma-separated
    #[arg(long, value_delimiter = ',')]
    products: Vec<String>,
    /// Lifetime of the token
    #[arg(long, default_value = "1h", value_parser = duration)]
    ttl: Duration,
    #[command(flatten)]
    settings: Settings,
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
    /// Allow auth = none on a non-loopback listen address (only behind an authenticating proxy)
    #[arg(long, env = "HERALD_INSECURE_ALLOW_REMOTE", num_args = 0..=1, default_missing_value = "true")]
    insecure_allow_remote: Option<bool>,
    /// HS256 shared secret (auth = jwt; at least 32 characters)
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PEM file with the RS256 or ES256 public key (auth = jwt; reloaded on SIGHUP)
    #[arg(long, env = "HERALD_JWT_PUBLIC_KEY_FILE")]
    jwt_public_key_file: Option<PathBuf>,
    /// JWKS file with the public keys (auth = jwt; reloaded on SIGHUP)
    #[arg(long, env = "HERALD_JWT_JWKS_FILE")]
    jwt_jwks_file: Option<PathBuf>,
    /// Required token issuer (iss)
    #[arg(long, env = "HERALD_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Required token audience (aud)
    #[arg(long, env = "HERALD_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Clock skew tolerated on exp and nbf [default: 30s]
    #[arg(long, env = "HERALD_JWT_LEEWAY", value_parser = duration)]
    jwt_leeway: Option<Duration>,
    /// Claim with the roles; dots reach nested claims [default: roles]
    #[arg(long, env = "HERALD_JWT_ROLES_CLAIM")]
    jwt_roles_claim: Option<String>,
    /// Claim with the products [default: products]
    #[arg(long, env = "HERALD_JWT_PRODUCTS_CLAIM")]
    jwt_products_claim: Option<String>,
    /// Cookie that may carry the token [default: herald_token]
    #[arg(long, env = "HERALD_JWT_COOKIE")]
    jwt_cookie: Option<String>,
    /// Stream connects per client IP per rate window [default: 300]
    #[arg(long, env = "HERALD_CONNECTS_PER_IP_PER_MINUTE")]
    connects_per_ip_per_minute: Option<u32>,
    /// Broadcasts created per admin per rate window [default: 60]
    #[arg(long, env = "HERALD_BROADCASTS_PER_ADMIN_PER_MINUTE")]
    broadcasts_per_admin_per_minute: Option<u32>,
    /// Window of the rate limits [default: 1m]
    #[arg(long, env = "HERALD_RATE_LIMIT_WINDOW", value_parser = duration)]
    rate_limit_window: Option<Duration>,
    /// Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed
    #[arg(long, env = "HERALD_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Option<Vec<String>>,
    /// Time a client has to send its request headers [default: 10s]
    #[arg(long, env = "HERALD_HEADER_TIMEOUT", value_parser = duration)]
    header_timeout: Option<Duration>,
    /// Largest request head in bytes [default: 16384]
    #[arg(long, env = "HERALD_MAX_HEADER_BYTES")]
    max_header_bytes: Option<usize>,
    /// Most request headers [default: 64]
    #[arg(long, env = "HERALD_MAX_HEADERS")]
    max_headers: Option<usize>,
    /// Time a client has to send a whole request body [default: 10s]
    #[arg(long, env = "HERALD_BODY_TIMEOUT", value_parser = duration)]
    body_timeout: Option<Duration>,
    /// How long a stream may accept no bytes while it has bytes to send [default: 20s]
    #[arg(long, env = "HERALD_SEND_TIMEOUT", value_parser = duration)]
    send_timeout: Option<Duration>,
    /// Open connections per client address [default: 512]
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Bearer token that /metrics requires [default: none, /metrics is open]
    #[arg(long, env = "HERALD_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Origins allowed by CORS, comma-separated [default: none, same-origin only]
    #[arg(long, env = "HERALD_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    cors_allowed_origins: Option<Vec<String>>,
    /// Let CORS requests carry credentials [default: false]
    #[arg(long, env = "HERALD_CORS_ALLOW_CREDENTIALS", num_args = 0..=1, default_missing_value = "true")]
    cors_allow_credentials: Option<bool>,
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
        set!(shutdown_grace, demo, lease_ttl, db_max_connections, insecure_allow_remote, jwt_leeway);
        set!(jwt_roles_claim, jwt_products_claim, jwt_cookie, connects_per_ip_per_minute);
        set!(broadcasts_per_admin_per_minute, rate_limit_window, trusted_proxies, header_timeout);
        set!(max_header_bytes, max_headers, cors_allowed_origins, cors_allow_credentials);
        set!(body_timeout, send_timeout, max_connections_per_ip);
        macro_rules! set_some {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = Some(v); })* };
        }
        set_some!(jwt_public_key_file, jwt_jwks_file, jwt_issuer, jwt_audience);
        if let Some(secret) = self.jwt_secret {
            c.jwt_secret = Some(Secret::new(secret));
        }
        if let Some(token) = self.metrics_token {
            c.metrics_token = Some(Secret::new(token));
        }
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
        Command::Serve(settings) => serve(settings.resolve()?).await,
        Command::Bench(args) => bench(args).await,
        Command::Publish(args) => client::publish::run(args).await,
        Command::Tail(args) => client::tail::run(args).await,
        Command::Users(args) => client::users::run(args).await,
        Command::Broadcasts(args) => client::broadcasts::run(args).await,
        Command::Token(args) => {
            let config = args.settings.resolve()?;
            let secret =
                config.jwt_secret.as_ref().context("herald token needs jwt_secret (HERALD_JWT_SECRET)")?;
            let token =
                herald_server::mint_token(secret, &args.sub, &args.roles, &args.products, args.ttl, &config)
                    .map_err(|e| anyhow::anyhow!(e))?;
            println!("{token}");
            Ok(())
        }
    }
}

/// Runs the load generator; prints the summary, then one JSON line.
async fn bench(a: BenchArgs) -> anyhow::Result<()> {
    use herald_bench::{Mode, Options, Target};
    let opts = Options {
        url: a.url.trim_end_matches('/').to_owned(),
        mode: match a.mode {
            BenchMode::Herald => Mode::Herald,
            BenchMode::Nchan => Mode::Nchan,
        },
        streams: a.streams,
        broadcasts: a.broadcasts,
        rate: a.rate,
        target: match a.target {
            BenchTarget::All => Target::All,
            BenchTarget::Role => Target::Role,
            BenchTarget::Selected => Target::Selected,
        },
        concurrency: a.concurrency,
        source_ips: a.source_ips,
        pid: a.pid,
        jwt_secret: a.jwt_secret,
        content_bytes: a.content_bytes,
        wait: a.wait,
        storm_missed: a.storm,
        user_prefix: a.user_prefix,
        sub_path: a.sub_path,
        pub_path: a.pub_path,
        progress: !a.quiet,
        stalled: a.stalled,
        stalled_resume: a.stalled_resume,
    };
    let report = herald_bench::run(opts).await?;
    print!("{report}");
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(config.log_format);
    if config.auth == AuthMode::None {
        tracing::warn!(
            listen = %config.listen,
            "auth = none: the userId parameter is trusted and anyone who reaches the server may act as any user"
        );
    }
    let listener =
        listen(&config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let running = herald_server::start(config, listener).await?;
    let stop = running.stop_token();
    let reloads = tokio::spawn(reload_on_sighup(running.reload_handle()));
    shutdown_signal().await;
    stop.cancel();
    reloads.abort();
    running.stopped().await;
    Ok(())
}

/// A listening socket with a deep accept backlog: thousands of clients reconnecting at once
/// (after a deploy, say) should queue, not have their SYNs dropped and retried seconds later.
async fn listen(address: &str) -> std::io::Result<TcpListener> {
    const BACKLOG: u32 = 4096;
    let addr = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// SIGHUP re-reads the JWT key file (PEM or JWKS) without a restart.
async fn reload_on_sighup(handle: herald_server::ReloadHandle) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        if let Err(e) = handle.reload_keys() {
            tracing::error!(error = %e, "reloading the JWT keys failed; the previous keys stay in use");
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

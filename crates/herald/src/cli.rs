//! The command line: subcommands and the flags of every configuration key. Each flag also reads
//! its `HERALD_*` variable (clap's `env`), and both override the TOML file, which overrides the
//! defaults.

use crate::{cert, client, config_file};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use herald_server::config::{AuthMode, Key, LogFormat, KEYS};
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
    /// Write a self-signed TLS certificate and key (herald.crt, herald.key) for local HTTPS.
    Cert(cert::CertArgs),
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
    /// Spread the streams over these base URLs, round-robin (a cluster's nodes); broadcasts still go to --url
    #[arg(long, value_delimiter = ',')]
    stream_urls: Vec<String>,
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
    /// PEM certificate to trust for an https:// --url (e.g. the one `herald cert` wrote)
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Open the streams over shared HTTP/2 connections, this many streams each (TLS for https://,
    /// else h2c) [default: HTTP/1.1, a connection per stream]
    #[arg(long)]
    http2: Option<usize>,
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

/// Every configuration key (SPEC 7a) as a flag with its `HERALD_*` variable, built from the
/// server's one declaration of the keys ([`herald_server::config::KEYS`]). Unset flags leave the
/// file's or the default value.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    config: Option<PathBuf>,
    values: Vec<(&'static str, String)>,
}

impl clap::FromArgMatches for Settings {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let values = KEYS
            .iter()
            .filter_map(|key| matches.get_one::<String>(key.name).map(|v| (key.name, v.clone())))
            .collect();
        Ok(Self { config: matches.get_one::<PathBuf>("config").cloned(), values })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for Settings {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let config = clap::Arg::new("config")
            .long("config")
            .env("HERALD_CONFIG")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML configuration file [default: herald.toml, if present]");
        let defaults = Config::default();
        KEYS.iter().fold(cmd.arg(config), |cmd, key| cmd.arg(key_arg(key, &defaults)))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn key_arg(key: &Key, defaults: &Config) -> clap::Arg {
    let default = defaults.get_toml(key.name).map_or("unset".to_owned(), |v| v.to_string());
    let arg = clap::Arg::new(key.name)
        .long(key.flag())
        .env(key.env())
        .value_name("VALUE")
        .help(format!("{} [default: {}]", key.summary(), default.trim_matches('"')))
        .hide_env_values(key.secret);
    if key.switch {
        arg.num_args(0..=1).default_missing_value("true").value_name("BOOL")
    } else {
        arg
    }
}

impl Settings {
    /// defaults < file < environment and flags.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let mut c = config_file::load(self.config.as_deref())?;
        for (key, value) in &self.values {
            c.set_text(key, value).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        }
        c.check().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(c)
    }
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config => {
            print!("{}", Config::default_toml());
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
        Command::Cert(args) => cert::run(args),
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
        stream_urls: a.stream_urls.iter().map(|u| u.trim_end_matches('/').to_owned()).collect(),
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
        tls_ca: a.tls_ca,
        http2: a.http2,
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

/// SIGHUP re-reads the JWT key file (PEM or JWKS) and the TLS certificate and key without a
/// restart; open streams stay open.
async fn reload_on_sighup(handle: herald_server::ReloadHandle) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        if let Err(e) = handle.reload_keys() {
            tracing::error!(error = %e, "reloading the JWT keys failed; the previous keys stay in use");
        }
        if let Err(e) = handle.reload_tls() {
            tracing::error!(error = %e, "reloading the TLS certificate failed; the previous one stays in use");
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

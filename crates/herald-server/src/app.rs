//! Start-up and shutdown: builds the store, bus, hub and tasks, serves HTTP, and tears it all
//! down in order (streams first, then the tasks, then the final flush of delivery records).

use crate::auth::Auth;
use crate::config::{parse_property, BusKind, Config};
use crate::dead_letters::StoredLetters;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::net::runtime::StreamRuntime;
use crate::net::tls::{CertStore, TlsError};
use crate::net::ConnLimits;
use crate::recorder::Recorder;
use crate::state::{AppState, Inner};
use crate::stream::{frame, Hub, HubConfig, Presence, StreamService};
use crate::tasks::leader::{while_leader, Leadership};
use crate::tasks::{feed, housekeeping, relay, scheduler};
use crate::{http, net};
use herald_bus::{EventBus, MemoryBus};
use herald_domain::{demo_users, SystemClock, Timestamp};
use herald_store::{ListFilter, Store, StoreError};
use herald_store_postgres::PoolSettings;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot read the JWT keys")]
    Keys(#[from] crate::auth::KeyError),
    #[error("cannot serve TLS")]
    Tls(#[from] TlsError),
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error("i/o error")]
    Io(#[from] std::io::Error),
    #[error("cannot start the event bus")]
    Bus(#[from] herald_bus::BusError),
}

/// Re-reads the JWT key file and the TLS certificate and key; what is in use stays when a file
/// is unreadable or invalid.
#[derive(Clone)]
pub struct ReloadHandle {
    state: AppState,
    tls: Option<Arc<CertStore>>,
}

impl ReloadHandle {
    pub fn reload_keys(&self) -> Result<usize, crate::auth::KeyError> {
        let n = self.state.auth.reload()?;
        tracing::info!(keys = n, "JWT keys reloaded");
        Ok(n)
    }

    /// Re-reads `tls_cert_file` and `tls_key_file`: new handshakes use them, open connections
    /// keep theirs. `Ok(false)` when the server does not serve TLS.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        let Some(store) = &self.tls else { return Ok(false) };
        store.reload()?;
        tracing::info!("TLS certificate and key reloaded");
        Ok(true)
    }
}

/// A started server; [`Running::stop`] shuts it down gracefully.
pub struct Running {
    pub addr: SocketAddr,
    state: AppState,
    tls: Option<Arc<CertStore>>,
    stop: CancellationToken,
    done: JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.done.await;
    }

    /// Waits until the server has stopped (after [`Running::stop`] or a fatal error).
    pub async fn stopped(self) {
        let _ = self.done.await;
    }

    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// A handle that re-reads the JWT key file (PEM or JWKS) and the TLS files, as on SIGHUP.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle { state: self.state.clone(), tls: self.tls.clone() }
    }
}

/// The background work of a node and how to stop it: the tasks first, the recorder last (it
/// flushes what the others recorded).
struct Background {
    tasks: JoinSet<()>,
    tasks_stop: CancellationToken,
    recording: JoinHandle<()>,
    recorder_stop: CancellationToken,
}

impl Background {
    async fn stop(mut self) {
        self.tasks_stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.recorder_stop.cancel();
        let _ = self.recording.await;
    }
}

/// Opens storage, starts every task and begins serving on `listener`. Returns once the server
/// is ready to take requests.
pub async fn start(config: Config, listener: TcpListener) -> Result<Running, ServerError> {
    config.check()?;
    let auth = Auth::new(&config)?;
    let tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Some(CertStore::open(cert, key)?),
        _ => None,
    };
    let acceptor = tls.as_ref().map(CertStore::acceptor).transpose()?;
    let addr = listener.local_addr()?;
    warn_clear_text_tokens(&config, addr);
    let store = open_store(&config).await?;
    if config.demo {
        let added = store.seed_users(&demo_users(), Timestamp::now()).await?;
        tracing::info!(added, "demo directory seeded");
    }
    // The relay's mark before the head: the bus is read from no later than what the head covers.
    let mark = store.relay_mark().await?;
    let head = store.event_range().await?.last;
    let metrics = Arc::new(Metrics::default());
    let hub = Arc::new(Hub::new(hub_config(&config), head, metrics.clone()));
    // Read after the head: what was live at the head is in it (a broadcast activated since is
    // dispatched later as well, which is harmless).
    let active = store.list_broadcasts(ListFilter::Active, None, Hub::LIVE_PAGE).await?;
    if active.len() < Hub::LIVE_PAGE as usize {
        hub.track_live(active);
    }
    let node_id = config.node_id.clone().unwrap_or_else(|| default_node_id(addr));
    let bus = open_bus(&config, &node_id, mark.bus_offset, &store, &metrics).await?;
    let (recorder, recorder_rx) = Recorder::new(1_024);
    let mut streams =
        StreamService::new(hub.clone(), store.clone(), recorder.clone(), metrics.clone(), config.sse_retry);
    let presence = bus.spans_nodes().then(|| Presence::new(store.clone(), &node_id, config.lease_ttl));
    if let Some(presence) = &presence {
        let cleared = presence.clear_own().await?;
        tracing::debug!(cleared, "streams an earlier run of this node left were forgotten");
        streams = streams.with_presence(presence.clone(), config.max_connections_per_user);
    }
    let state = AppState::new(Inner {
        limits: Limits::new(&config),
        config,
        auth,
        store,
        bus,
        hub,
        streams,
        presence,
        recorder,
        metrics,
        node_id,
    });
    // Before the background tasks: once they run they hold the store (and its SQLite lock).
    let runtime = Arc::new(StreamRuntime::start()?);
    let background = spawn_background(&state, recorder_rx);
    let conn_limits = conn_limits(&state);
    let stop = CancellationToken::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, node = %state.node_id, "herald is ready");
    let serving = Serving { listener, limits: conn_limits, runtime, tls: acceptor };
    let done = tokio::spawn(serve(serving, state.clone(), stop.clone(), background));
    Ok(Running { addr, state, tls, stop, done })
}

/// With auth = jwt on a non-loopback address and no TLS, tokens cross the network readable.
fn tokens_in_clear_text(config: &Config, addr: SocketAddr) -> bool {
    config.auth == crate::config::AuthMode::Jwt && config.tls_cert_file.is_none() && !addr.ip().is_loopback()
}

fn warn_clear_text_tokens(config: &Config, addr: SocketAddr) {
    if tokens_in_clear_text(config, addr) {
        tracing::warn!(
            %addr,
            "auth = jwt without TLS on a non-loopback address: tokens travel in clear text; set \
             tls_cert_file and tls_key_file, or terminate TLS in a proxy in front"
        );
    }
}

/// How the node takes connections.
struct Serving {
    listener: TcpListener,
    limits: ConnLimits,
    runtime: Arc<StreamRuntime>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves until `stop`, then shuts down in order.
async fn serve(serving: Serving, state: AppState, stop: CancellationToken, background: Background) {
    let Serving { listener, limits, runtime, tls } = serving;
    let routers = http::routers(state.clone());
    let hub = state.hub.clone();
    let announce = move || {
        let streams = hub.shutdown(shutdown_frame());
        tracing::info!(streams, "shutting down: streams told SERVER_SHUTDOWN");
    };
    let grace = state.config.shutdown_grace;
    let listening = net::Listening { listener, tls };
    net::serve(listening, routers, limits, stop, grace, runtime.clone(), announce).await;
    drop(runtime);
    background.stop().await;
    state.bus.close().await;
    let store = state.store.clone();
    drop(state);
    store.close().await;
    tracing::info!("herald stopped");
}

/// The node's tasks: leadership, the feed and heartbeats everywhere; the relay, the scheduler and
/// log pruning while leading; and the delivery recorder.
fn spawn_background(
    state: &AppState,
    recorder_rx: tokio::sync::mpsc::Receiver<Vec<herald_store::DeliveryMark>>,
) -> Background {
    let (store, config) = (state.store.clone(), &state.config);
    let tasks_stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let (leader_tx, leader) = tokio::sync::watch::channel(false);
    let leadership = Leadership {
        store: store.clone(),
        node_id: state.node_id.clone(),
        ttl: config.lease_ttl,
        bus: config.bus,
    };
    tasks.spawn(leadership.run(leader_tx, tasks_stop.clone()));
    let feed = feed::Feed {
        hub: state.hub.clone(),
        store: store.clone(),
        recorder: state.recorder.clone(),
        metrics: state.metrics.clone(),
        fallback_after: config.bus_fallback_after,
    };
    tasks.spawn(feed.run(state.bus.subscribe(), tasks_stop.clone()));
    if state.presence.is_some() {
        tasks.spawn(housekeeping::disconnects(
            state.hub.clone(),
            store.signals().disconnect.subscribe(),
            tasks_stop.clone(),
        ));
    }
    tasks.spawn(housekeeping::heartbeats(state.hub.clone(), config.heartbeat_interval, tasks_stop.clone()));
    let relay = relay::Relay {
        store: store.clone(),
        bus: state.bus.clone(),
        metrics: state.metrics.clone(),
        published: Arc::new(std::sync::atomic::AtomicI64::new(state.hub.head())),
    };
    tasks.spawn(while_leader(leader.clone(), tasks_stop.clone(), move |stop| relay.clone().run(stop)));
    let scheduling = store.clone();
    tasks.spawn(while_leader(leader.clone(), tasks_stop.clone(), move |stop| {
        scheduler::run(scheduling.clone(), Arc::new(SystemClock), stop)
    }));
    let (pruning, retention) = (store.clone(), config.event_retention);
    tasks.spawn(while_leader(leader, tasks_stop.clone(), move |stop| {
        housekeeping::prune_log(pruning.clone(), retention, stop)
    }));
    let recorder_stop = CancellationToken::new();
    let recording = {
        let (recorder, metrics) = (state.recorder.clone(), state.metrics.clone());
        let (flush, stop) = (config.delivery_flush_interval, recorder_stop.clone());
        let backlog = state.hub.backlog();
        tokio::spawn(async move { recorder.run(recorder_rx, store, flush, metrics, backlog, stop).await })
    };
    Background { tasks, tasks_stop, recording, recorder_stop }
}

fn conn_limits(state: &AppState) -> ConnLimits {
    let config = &state.config;
    ConnLimits {
        header_timeout: config.header_timeout,
        max_header_bytes: config.max_header_bytes,
        max_headers: config.max_headers,
        http2_max_streams: config.http2_max_concurrent_streams,
        send_timeout: config.send_timeout,
        per_ip: state.limits.per_ip.clone(),
        trusted_proxies: state.limits.trusted_proxies.clone().into(),
    }
}

/// The in-process bus, or Kafka (reading from `start`, the offset after what the relay last
/// published) with dead letters kept in the store.
async fn open_bus(
    config: &Config,
    node_id: &str,
    start: Option<i64>,
    store: &Arc<dyn Store>,
    metrics: &Arc<Metrics>,
) -> Result<Arc<dyn EventBus>, ServerError> {
    let BusKind::Kafka = config.bus else { return Ok(Arc::new(MemoryBus::new(4_096))) };
    let settings = herald_bus_kafka::KafkaSettings {
        brokers: config.kafka_brokers.clone().unwrap_or_default(),
        topic: config.kafka_topic.clone(),
        node_id: node_id.to_owned(),
        create_topic: config.kafka_create_topic,
        replication_factor: config.kafka_replication_factor,
        retention: config.kafka_retention,
        // Checked with the configuration.
        properties: config.kafka_properties.iter().filter_map(|p| parse_property(p).ok()).collect(),
    };
    let letters = Arc::new(StoredLetters { store: store.clone(), metrics: metrics.clone() });
    Ok(Arc::new(herald_bus_kafka::KafkaBus::start(settings, start, letters).await?))
}

/// Creates or upgrades the database schema and returns.
pub async fn migrate(config: &Config) -> Result<(), ServerError> {
    config.check()?;
    open_store(config).await?.close().await;
    Ok(())
}

/// The backend the URL names: `postgres://…` or `sqlite://…`.
async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ServerError> {
    let url = &config.database_url;
    if is_postgres(url) {
        let settings = PoolSettings { max_connections: config.db_max_connections, ..PoolSettings::default() };
        Ok(Arc::new(herald_store_postgres::open(url, settings).await?))
    } else {
        Ok(Arc::new(herald_store_sqlite::open(url).await?))
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

fn hub_config(config: &Config) -> HubConfig {
    HubConfig {
        queue: config.stream_queue,
        per_user: config.max_connections_per_user,
        total: config.max_connections,
        window_entries: config.replay_window,
        window_bytes: config.replay_window_bytes,
        // Nothing else writes an SQLite file of a single node. Other nodes (bus = kafka), or a
        // second process on the same PostgreSQL, would change users this hub learns of only later.
        serve_profiles: matches!(config.bus, BusKind::Memory) && !is_postgres(&config.database_url),
    }
}

fn shutdown_frame() -> bytes::Bytes {
    frame::json_frame(
        None,
        "SERVER_SHUTDOWN",
        &serde_json::json!({ "message": "server is shutting down; reconnect to continue" }),
    )
}

fn default_node_id(addr: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "herald".to_owned());
    format!("{host}:{}", addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMode;
    use std::path::PathBuf;

    #[test]
    fn only_jwt_without_tls_on_a_non_loopback_address_is_warned_about() {
        let remote: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let jwt = Config { auth: AuthMode::Jwt, ..Config::default() };
        assert!(tokens_in_clear_text(&jwt, remote));
        assert!(!tokens_in_clear_text(&jwt, local));
        let tls = Config { tls_cert_file: Some(PathBuf::from("c.pem")), ..jwt.clone() };
        assert!(!tokens_in_clear_text(&tls, remote));
        assert!(!tokens_in_clear_text(&Config::default(), remote), "auth = none has its own check");
    }
}

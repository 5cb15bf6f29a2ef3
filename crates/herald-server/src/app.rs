//! Start-up and shutdown: builds the store, bus, hub and tasks, serves HTTP, and tears it all
//! down in order (streams first, then the tasks, then the final flush of delivery records).

use crate::auth::Auth;
use crate::config::Config;
use crate::hub::{frame, Hub, HubConfig};
use crate::leader::{while_leader, Leadership};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::streams::StreamRuntime;
use crate::{feed, housekeeping, http, relay, scheduler, server};
use herald_bus::{EventBus, MemoryBus};
use herald_domain::{demo_users, Timestamp};
use herald_store::{Store, StoreError};
use herald_store_postgres::{PgStore, PoolSettings};
use herald_store_sqlite::SqliteStore;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared state of the HTTP handlers: a cheap `Clone` of one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub auth: Auth,
    pub limits: Limits,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub hub: Arc<Hub>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub node_id: String,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Re-reads the JWT key file; the old keys stay in use when the file is unreadable or invalid.
#[derive(Clone)]
pub struct ReloadHandle(AppState);

impl ReloadHandle {
    pub fn reload_keys(&self) -> Result<usize, String> {
        let n = self.0.auth.reload()?;
        tracing::info!(keys = n, "JWT keys reloaded");
        Ok(n)
    }
}

/// A started server; [`Running::stop`] shuts it down gracefully.
pub struct Running {
    pub addr: SocketAddr,
    state: AppState,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
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

    /// A handle that re-reads the JWT key file (PEM or JWKS), as on SIGHUP.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle(self.state.clone())
    }
}

/// Opens storage, starts every task and begins serving on `listener`. Returns once the server
/// is ready to take requests.
pub async fn start(config: Config, listener: TcpListener) -> Result<Running, ServerError> {
    config.check().map_err(ServerError::Config)?;
    let auth = Auth::new(&config).map_err(ServerError::Config)?;
    let limits = Limits::new(&config);
    let addr = listener.local_addr()?;
    let store = open_store(&config).await?;
    if config.demo {
        let added = store.seed_users(&demo_users(), Timestamp::now()).await?;
        tracing::info!(added, "demo directory seeded");
    }
    let head = store.event_range().await?.last;
    let metrics = Arc::new(Metrics::default());
    let hub = Arc::new(Hub::new(hub_config(&config), head, metrics.clone()));
    let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new(4_096));
    let subscription = bus.subscribe();
    let (recorder, recorder_rx) = Recorder::new(1_024);

    let node_id = config.node_id.clone().unwrap_or_else(|| default_node_id(addr));
    let tasks_stop = CancellationToken::new();
    let recorder_stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(false);
    let leadership =
        Leadership { store: store.clone(), node_id: node_id.clone(), ttl: config.lease_ttl, bus: config.bus };
    tasks.spawn(leadership.run(leader_tx, tasks_stop.clone()));
    tasks.spawn(feed::run(hub.clone(), store.clone(), subscription, recorder.clone(), tasks_stop.clone()));
    tasks.spawn(housekeeping::heartbeats(hub.clone(), config.heartbeat_interval, tasks_stop.clone()));
    {
        let (store, bus, metrics) = (store.clone(), bus.clone(), metrics.clone());
        tasks.spawn(while_leader(leader_rx.clone(), tasks_stop.clone(), move |stop| {
            relay::run(store.clone(), bus.clone(), metrics.clone(), stop)
        }));
    }
    {
        let store = store.clone();
        tasks.spawn(while_leader(leader_rx.clone(), tasks_stop.clone(), move |stop| {
            scheduler::run(store.clone(), stop)
        }));
    }
    {
        let (store, retention) = (store.clone(), config.event_retention);
        tasks.spawn(while_leader(leader_rx, tasks_stop.clone(), move |stop| {
            housekeeping::prune_log(store.clone(), retention, stop)
        }));
    }
    let recording = {
        let (recorder, store, metrics) = (recorder.clone(), store.clone(), metrics.clone());
        let (flush, stop) = (config.delivery_flush_interval, recorder_stop.clone());
        tokio::spawn(async move { recorder.run(recorder_rx, store, flush, metrics, stop).await })
    };

    let grace = config.shutdown_grace;
    let conn_limits = server::ConnLimits {
        header_timeout: config.header_timeout,
        max_header_bytes: config.max_header_bytes,
        max_headers: config.max_headers,
        send_timeout: config.send_timeout,
        per_ip: limits.per_ip.clone(),
        trusted_proxies: limits.trusted_proxies.clone().into(),
    };
    let closer = store.clone();
    let state = AppState(Arc::new(Inner {
        config,
        auth,
        limits,
        store,
        bus,
        hub: hub.clone(),
        recorder,
        metrics,
        node_id,
    }));
    let router = http::router(state.clone());
    let reload_state = state.clone();
    let streams = Arc::new(StreamRuntime::start()?);
    let stop = CancellationToken::new();
    tracing::info!(%addr, node = %state.node_id, "herald is ready");
    let done = tokio::spawn({
        let stop = stop.clone();
        async move {
            let announce = move || {
                let streams = hub.shutdown(shutdown_frame());
                tracing::info!(streams, "shutting down: streams told SERVER_SHUTDOWN");
            };
            server::serve(listener, router, conn_limits, stop, grace, streams.clone(), announce).await;
            drop(streams);
            tasks_stop.cancel();
            while tasks.join_next().await.is_some() {}
            recorder_stop.cancel();
            let _ = recording.await;
            drop(state);
            closer.close().await;
            tracing::info!("herald stopped");
        }
    });
    Ok(Running { addr, state: reload_state, stop, done })
}

/// Creates or upgrades the database schema and returns.
pub async fn migrate(config: &Config) -> Result<(), ServerError> {
    config.check().map_err(ServerError::Config)?;
    open_store(config).await?.close().await;
    Ok(())
}

/// The backend the URL names: `postgres://…` or `sqlite://…`.
async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ServerError> {
    let url = &config.database_url;
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let settings = PoolSettings { max_connections: config.db_max_connections, ..PoolSettings::default() };
        Ok(Arc::new(PgStore::open(url, settings).await?))
    } else {
        Ok(Arc::new(SqliteStore::open(url).await?))
    }
}

fn hub_config(config: &Config) -> HubConfig {
    HubConfig {
        queue: config.stream_queue,
        per_user: config.max_connections_per_user,
        total: config.max_connections,
        window_entries: config.replay_window,
        window_bytes: config.replay_window_bytes,
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

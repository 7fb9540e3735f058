//! The one app factory shared by `main`, the tests and the benches.

use crate::config::Config;
use crate::room::{FlushNow, RoomEnv};
use crate::store::{Store, StoreError};
use crate::supervisor::{FlushAll, Health, Registry, Supervisor, SupervisorConfig};
use actix::prelude::*;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// What every request handler can reach.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub supervisor: Addr<Supervisor>,
    pub health: Arc<Health>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The room lists: written by the supervisor, read here for FetchList.
    pub list: crate::supervisor::SharedList,
    /// Register, Login, Refresh and token checks, over the account tables of the same database.
    pub accounts: Arc<crate::accounts::Accounts>,
    /// Who a request comes from (trusted reverse proxies name the client).
    pub clients: crate::net::ClientAddr,
    /// Who may call the nginx-rtmp and SRS hooks (`media.trusted_addrs`).
    pub media_hooks: crate::net::Cidrs,
    /// Open client connections and their bounds.
    pub connections: Arc<crate::http::connections::Connections>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    arbiters: Vec<Arbiter>,
    shutdown_deadline: Duration,
}

impl Application {
    /// Opens the store, restores rooms and the list index, and binds the listener.
    /// Must run inside an actix `System`.
    pub async fn build(config: Config) -> Result<Application, BuildError> {
        for w in config.warnings() {
            tracing::warn!("{w}");
        }
        let fd_limit = crate::http::connections::raise_fd_limit();
        let (max_connections, fd_warnings) = crate::http::connections::budget(&config, fd_limit);
        for w in fd_warnings {
            tracing::warn!("{w}");
        }
        let cidrs = |list: &[String]| {
            crate::net::Cidrs::parse(list).map_err(crate::config::ConfigError::Invalid)
        };
        let clients = crate::net::ClientAddr::new(
            cidrs(&config.server.trusted_proxies)?,
            config.server.proxy_header,
        );
        let media_hooks = cidrs(&config.media.trusted_addrs)?;
        let per_addr_exempt: Vec<String> = config
            .server
            .trusted_proxies
            .iter()
            .chain(&config.limits.per_addr_exempt)
            .cloned()
            .collect();
        let connections = crate::http::connections::Connections::new(
            max_connections,
            config.limits.max_connections_per_addr,
            cidrs(&per_addr_exempt)?,
            Duration::from_secs(config.limits.request_timeout_secs),
        );
        // One SQL store serves both traits: rooms and accounts share the database.
        let sql = Arc::new(crate::store::SqlStore::connect(&config.database).await?);
        let store: Arc<dyn Store> = sql.clone();
        let accounts = Arc::new(crate::accounts::Accounts::new(&config, sql)?);
        if config.database.migrate_on_start {
            store.migrate().await?;
        }
        let health = Arc::new(Health::default());
        let cutoff = crate::model::now_unix() - config.list.recording_days as i64 * 86_400;
        let live = store.online_rooms().await?;
        let recordings = store.recent_recordings(cutoff).await?;
        tracing::info!(
            live = live.len(),
            recordings = recordings.len(),
            "restored list index"
        );
        let list: crate::supervisor::SharedList = Arc::new(std::sync::RwLock::new(
            crate::supervisor::ListIndex::new(config.list.order, config.list.recording_days),
        ));
        let mut sup = Supervisor::new(
            SupervisorConfig {
                persist: config.database.persist_snapshots,
                handover_interval: Duration::from_millis(config.list.index_tick_ms),
                snapshot_interval: Duration::from_millis(config.database.snapshot_interval_ms),
                max_backoff: Duration::from_millis(config.database.max_backoff_ms),
            },
            store.clone(),
            health.clone(),
            list.clone(),
        );
        sup.seed(live, recordings);
        let handover = sup.handover();
        let supervisor = sup.start();

        let workers = if config.server.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            config.server.workers
        };
        // 0: rooms run on the HTTP workers (each registers itself below); else a pool.
        let arbiters: Vec<Arbiter> = (0..config.server.room_threads)
            .map(|_| Arbiter::new())
            .collect();
        let rooms_on_workers = arbiters.is_empty();
        let env = Arc::new(RoomEnv {
            store: store.clone(),
            supervisor: supervisor.clone(),
            handover,
            index_tick: Duration::from_millis(config.list.index_tick_ms),
            max_members: config.limits.max_members_per_room,
            max_rooms: config.limits.max_rooms,
            rooms: Arc::new(dashmap::DashMap::new()),
            ws_coalesce: Duration::from_millis(config.ws.coalesce_ms),
            max_subscribers: config.ws.max_per_room,
            idle_stop: Duration::from_secs(config.server.room_idle_secs),
            health: health.clone(),
            alive: Default::default(),
        });
        let registry = Arc::new(Registry::new(
            arbiters.iter().map(|a| a.handle()).collect(),
            env,
        ));

        let addr = config.server.bind.clone();
        let listener = TcpListener::bind(&addr).map_err(|source| BuildError::Listen {
            addr: addr.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| BuildError::Listen { addr, source })?
            .port();
        let shutdown_secs = config.server.shutdown_timeout_secs;
        let request_timeout = Duration::from_secs(config.limits.request_timeout_secs);
        let state = web::Data::new(AppState {
            config: Arc::new(config),
            store,
            registry,
            supervisor,
            health,
            metrics: Arc::new(crate::metrics::Metrics::default()),
            list,
            accounts,
            clients,
            media_hooks,
            connections: connections.clone(),
        });
        spawn_stale_sweep(state.clone());
        let data = state.clone();
        let server = HttpServer::new(move || {
            // Runs once on each worker's thread as it starts.
            if rooms_on_workers {
                data.registry.add_arbiter(Arbiter::current());
            }
            App::new()
                .app_data(data.clone())
                .app_data(crate::http::body::RequestTimeout(request_timeout))
                .wrap(actix_web::middleware::from_fn(crate::http::body::deadline))
                .wrap(actix_web::middleware::from_fn(
                    crate::http::request_id::request_id,
                ))
                .configure(crate::http::routes)
        })
        .on_connect(move |conn, ext| connections.on_connect(conn, ext))
        .client_request_timeout(request_timeout)
        .keep_alive(crate::http::connections::KEEP_ALIVE)
        // The bound is `connections`' (in total, not per worker): actix's must not bite first.
        .max_connections(max_connections)
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(shutdown_secs)
        .listen(listener)
        .map_err(|source| BuildError::Listen {
            addr: "listener".into(),
            source,
        })?
        .run();
        Ok(Application {
            port,
            server,
            state,
            arbiters,
            shutdown_deadline: Duration::from_secs(shutdown_secs.max(1) + 5),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the handle stops the server, then flushes every dirty room.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server,
            state,
            arbiters,
            shutdown_deadline,
            ..
        } = self;
        server.await?;
        let flushed = flush_state(&state, shutdown_deadline).await;
        for a in arbiters {
            a.stop();
        }
        if flushed {
            tracing::info!("state flushed; bye");
            Ok(())
        } else {
            Err(std::io::Error::other(
                "could not flush all state to the database before the deadline",
            ))
        }
    }
}

/// Applies the stale-stream rule: rooms listed online with no sign of life for
/// `live.stale_after_secs` are asked to check themselves (they decide in their mailbox).
fn spawn_stale_sweep(state: web::Data<AppState>) {
    let stale = state.config.live.stale_after_secs as i64;
    if stale <= 0 {
        return;
    }
    let period = Duration::from_secs((stale as u64 / 4).clamp(1, 30));
    actix::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let before = crate::model::now_unix() - stale;
            let ids = state
                .list
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .stale_live(before, 10_000);
            for vj in ids {
                if let Ok(Some(room)) = state.registry.get(&crate::model::RoomKey::Live(vj)).await {
                    let _ = room
                        .send(crate::room::CheckStale { stale_after: stale })
                        .await;
                }
            }
        }
    });
}

/// Rooms hand their pending changes to the supervisor, which writes them all. Rooms on
/// stopped HTTP workers hand theirs over as their threads drop them; this waits for that.
pub async fn flush_state(state: &AppState, deadline: Duration) -> bool {
    let until = std::time::Instant::now() + deadline;
    let mut all_handed_over = true;
    loop {
        let rooms = state.registry.all();
        let mut answered = 0;
        for r in &rooms {
            if r.send(FlushNow).await.is_ok() {
                answered += 1;
            }
        }
        let alive = state.registry.alive();
        if alive <= answered {
            tracing::info!(rooms = answered, "rooms flushed");
            break;
        }
        if std::time::Instant::now() >= until {
            tracing::warn!(
                waiting = alive - answered,
                "rooms on stopped workers did not hand over in time"
            );
            all_handed_over = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = until.saturating_duration_since(std::time::Instant::now());
    let written = state
        .supervisor
        .send(FlushAll {
            deadline: left.max(Duration::from_secs(1)),
        })
        .await
        .unwrap_or(false);
    written && all_handed_over
}

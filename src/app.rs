//! The one app factory shared by `main`, the tests and the benches: it builds the store,
//! the supervisor, the rooms and the state handlers reach, and wires the HTTP routes.

use crate::config::{AuthMode, Config};
use crate::http::connections::Connections;
use crate::room::{Rooms, RoomsConfig};
use crate::state::AppState;
use crate::store::{Store, StoreError};
use crate::supervisor::{Supervisor, SupervisorConfig};
use actix::Actor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
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
    connections: Arc<Connections>,
    shutdown_deadline: Duration,
}

impl Application {
    /// Opens the store, restores rooms and the list index, and binds the listener.
    /// Must run inside an actix `System`.
    pub async fn build(config: Config) -> Result<Application, BuildError> {
        for w in config.warnings() {
            tracing::warn!("{w}");
        }
        match config.auth.mode {
            AuthMode::Required => tracing::info!("{}", config.auth.mode.meaning()),
            AuthMode::Off => tracing::warn!("{}", config.auth.mode.meaning()),
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
        let connections = Connections::new(
            max_connections,
            config.limits.max_connections_per_addr,
            cidrs(&per_addr_exempt)?,
            Duration::from_secs(config.limits.request_timeout_secs),
        );
        // One SQL store serves both traits: rooms and accounts share the database.
        let sql = Arc::new(crate::store::SqlStore::connect(&config.database).await?);
        let store: Arc<dyn Store> = sql.clone();
        let content: Arc<dyn crate::store::ContentStore> = sql.clone();
        let accounts = Arc::new(crate::accounts::Accounts::new(&config, sql)?);
        if config.database.migrate_on_start {
            store.migrate().await?;
        }
        let addr = config.server.bind.clone();
        let listener = TcpListener::bind(&addr).map_err(|source| BuildError::Listen {
            addr: addr.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| BuildError::Listen { addr, source })?
            .port();
        let cluster = match config.cluster.enabled() {
            false => None,
            true => Some(join_cluster(&config, port).await?),
        };

        let health = Arc::new(crate::metrics::Health::default());
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
        if let Some(c) = &cluster {
            let feed = crate::supervisor::feed::FeedConfig {
                cluster: c.clone(),
                hash_key: c.key("list:rooms"),
                stream_key: c.key("list:feed"),
                health: health.clone(),
            };
            sup.set_feed(crate::supervisor::feed::spawn_publisher(feed.clone()));
            crate::supervisor::feed::spawn_follower(feed, list.clone());
        }
        let handover = sup.handover();
        let fenced = sup.fenced_rooms();
        let supervisor = sup.start();

        let workers = if config.server.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            config.server.workers
        };
        let cluster_for_events = cluster.clone();
        let rooms = Rooms::new(
            RoomsConfig {
                index_tick: Duration::from_millis(config.list.index_tick_ms),
                max_members: config.limits.max_members_per_room,
                max_rooms: config.limits.max_rooms,
                ws_coalesce: Duration::from_millis(config.ws.coalesce_ms),
                max_subscribers: config.ws.max_per_room,
                idle_stop: Duration::from_secs(config.server.room_idle_secs),
                threads: config.server.room_threads,
            },
            store.clone(),
            supervisor,
            handover,
            health.clone(),
            fenced,
            cluster,
        );
        // A revocation on one node reaches the others' verified-token caches at once.
        if let Some(c) = &cluster_for_events {
            let (announcer, receiver) = (c.clone(), accounts.clone());
            accounts.on_revoke(move || {
                let c = announcer.clone();
                actix::spawn(async move { c.announce("revoked").await });
            });
            c.spawn_events(move |event| {
                if event == "revoked" {
                    receiver.forget_verified();
                }
            });
            accounts.share_throttles(Arc::new(ClusterWindows(c.clone())));
        }
        rooms.spawn_stale_sweep(list.clone(), config.live.stale_after_secs as i64);
        rooms.spawn_failover(list.clone());

        let shutdown_secs = config.server.shutdown_timeout_secs;
        let request_timeout = Duration::from_secs(config.limits.request_timeout_secs);
        let state = web::Data::new(AppState {
            config: Arc::new(config),
            store,
            rooms,
            list,
            health,
            metrics: Arc::new(crate::metrics::Metrics::new(
                crate::protocol::request::Action::all().map(|a| a.name()),
            )),
            accounts,
            content,
            clients,
            media_hooks,
            openapi: std::sync::OnceLock::new(),
        });
        let data = state.clone();
        let conns = web::Data::from(connections.clone());
        let accept = connections.clone();
        let server = HttpServer::new(move || {
            // Runs once on each worker's thread as it starts.
            if data.rooms.on_workers() {
                data.rooms.run_here();
            }
            App::new()
                .app_data(data.clone())
                .app_data(conns.clone())
                .app_data(crate::http::body::RequestTimeout(request_timeout))
                .wrap(actix_web::middleware::from_fn(crate::http::body::deadline))
                .wrap(actix_web::middleware::from_fn(
                    crate::http::request_id::request_id,
                ))
                .configure(crate::http::routes)
        })
        .on_connect(move |conn, ext| accept.on_connect(conn, ext))
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
            connections,
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

    /// Open client connections and their bounds.
    pub fn connections(&self) -> Arc<Connections> {
        self.connections.clone()
    }

    /// Serves until the handle stops the server, then flushes every dirty room.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server,
            state,
            shutdown_deadline,
            ..
        } = self;
        server.await?;
        let flushed = state.rooms.flush(shutdown_deadline).await;
        // Only once everything is written may other nodes take the rooms over.
        if flushed {
            state.rooms.leave_cluster().await;
        }
        state.rooms.stop_threads();
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

/// The throttles' windows, counted in the cluster's Redis.
struct ClusterWindows(Arc<crate::cluster::Cluster>);

#[async_trait::async_trait]
impl crate::accounts::throttle::SharedWindows for ClusterWindows {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<Option<Duration>, ()> {
        self.0
            .window_hit(key, limit, window)
            .await
            .map_err(unreachable_window)
    }

    async fn begin(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<crate::accounts::throttle::Shared, ()> {
        use crate::accounts::throttle::Shared;
        Ok(match self.0.window_begin(key, limit, window).await {
            Err(e) => {
                unreachable_window(e);
                return Err(());
            }
            Ok(Ok(())) => Shared::Go,
            Ok(Err(None)) => Shared::Busy,
            Ok(Err(Some(wait))) => Shared::Throttled(wait),
        })
    }

    async fn finish(&self, key: &str, failed: bool, window: Duration) {
        self.0.window_finish(key, failed, window).await
    }
}

fn unreachable_window(e: crate::cluster::ClusterError) {
    tracing::warn!(error = %e, "cluster-wide throttle unreachable: this node's own applies");
}

/// Joins the cluster: this node's id and the URL peers reach it at (from the port bound).
async fn join_cluster(
    config: &Config,
    port: u16,
) -> Result<Arc<crate::cluster::Cluster>, BuildError> {
    let c = &config.cluster;
    let node_id = if c.node_id.is_empty() {
        crate::cluster::default_node_id(port)
    } else {
        c.node_id.clone()
    };
    let url = if c.advertise_url.is_empty() {
        let host = config
            .server
            .bind
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or("127.0.0.1");
        // Bound to every address: peers reach it by its host name (a container's, say).
        let host = match host {
            "0.0.0.0" | "" | "[::]" => {
                crate::cluster::host_name().unwrap_or_else(|| "127.0.0.1".into())
            }
            h => h.to_string(),
        };
        format!("http://{host}:{port}")
    } else {
        c.advertise_url.trim_end_matches('/').to_string()
    };
    let cluster = crate::cluster::Cluster::join(c, node_id, url).await?;
    tracing::info!(node = %cluster.node_id, url = %cluster.url, "joined the cluster");
    Ok(cluster)
}

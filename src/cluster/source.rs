//! Where this node's Redis is: one address (`cluster.redis_url`), or whichever server the
//! Sentinels name as the primary now (`cluster.sentinels`). With Sentinel, a watcher asks
//! them twice a second and, when the primary changed (a failover), switches every later
//! command to the new one — without a restart, and without trusting a connection that
//! still reaches the old primary (demoted to a replica, it refuses writes).

use redis::aio::ConnectionManager;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub struct Source {
    current: RwLock<(redis::Client, ConnectionManager, String)>,
    cfg: redis::aio::ConnectionManagerConfig,
    sentinels: Vec<String>,
    master: String,
}

/// What the Sentinels are asked, and how often.
const WATCH_EVERY: Duration = Duration::from_millis(500);

impl Source {
    pub async fn connect(
        url: &str,
        sentinels: &[String],
        master: &str,
        timeout: Duration,
    ) -> redis::RedisResult<Arc<Source>> {
        // Commands fail fast while Redis is away: the caller degrades, it does not wait.
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let url = if sentinels.is_empty() {
            url.to_string()
        } else {
            primary(sentinels, master, timeout).await?
        };
        let client = redis::Client::open(url.as_str())?;
        let conn = ConnectionManager::new_with_config(client.clone(), cfg.clone()).await?;
        let source = Arc::new(Source {
            current: RwLock::new((client, conn, url)),
            cfg,
            sentinels: sentinels.to_vec(),
            master: master.to_string(),
        });
        if !source.sentinels.is_empty() {
            tokio::spawn(watch(Arc::downgrade(&source), timeout));
        }
        Ok(source)
    }

    /// A connection to the current primary (cheap: a shared multiplexed connection).
    pub fn conn(&self) -> ConnectionManager {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// For connections of their own (blocking reads, subscriptions).
    pub fn client(&self) -> redis::Client {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }
}

/// Asks each Sentinel in turn for the primary's address; the first that answers decides.
async fn primary(
    sentinels: &[String],
    master: &str,
    timeout: Duration,
) -> redis::RedisResult<String> {
    let mut last = None;
    for s in sentinels {
        let attempt = async {
            let client = redis::Client::open(format!("redis://{s}"))?;
            let mut c = client.get_multiplexed_async_connection().await?;
            let (host, port): (String, u16) = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(master)
                .query_async(&mut c)
                .await?;
            Ok::<_, redis::RedisError>(format!("redis://{host}:{port}"))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(url)) => return Ok(url),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "sentinel did not answer in time",
                )))
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Client, "no sentinel configured"))
    }))
}

async fn watch(source: std::sync::Weak<Source>, timeout: Duration) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tick.tick().await;
        let Some(s) = source.upgrade() else { return };
        let Ok(url) = primary(&s.sentinels, &s.master, timeout).await else {
            continue;
        };
        let known = s
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .2
            .clone();
        if url == known {
            continue;
        }
        let Ok(client) = redis::Client::open(url.as_str()) else {
            continue;
        };
        match ConnectionManager::new_with_config(client.clone(), s.cfg.clone()).await {
            Ok(conn) => {
                tracing::warn!(primary = %url, "sentinel: redis primary changed; switched to it");
                *s.current.write().unwrap_or_else(|e| e.into_inner()) = (client, conn, url);
            }
            Err(e) => tracing::warn!(error = %e, "sentinel: cannot reach the new primary yet"),
        }
    }
}

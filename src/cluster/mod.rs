//! Several nodes as one server: node leases and room owners in Redis, and the signed
//! channel nodes forward room calls over (`peer`). Redis says who *should* own a room; the
//! database fence (see `store`) decides who *may* write it, so losing a Redis write in a
//! failover can cost a retry but never a room written by two nodes.
//!
//! A node holds one lease key (`{prefix}node:{id}` = its URL, expiring after `lease_ms`,
//! renewed three times per lease). A room's owner key (`{prefix}room:…` = a node id) is
//! valid while that node's lease lives; a claim succeeds only over an absent or dead owner.
//! A node acknowledges for its rooms only while its own lease is valid on its monotonic
//! clock: one paused past its lease (SIGSTOP) answers "retry" until it has renewed and
//! checked which of its rooms are still its own. While Redis cannot be reached at all the
//! node keeps serving the rooms it holds (degraded): nobody can claim them then, and a node
//! that did (partitioned from this one only) is stopped by the database fence.

pub mod peer;
mod source;

use crate::config::ClusterConfig;
use crate::model::RoomKey;
use dashmap::DashMap;
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a room's calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This node: serve it here.
    Me,
    /// Another live node: forward to it.
    Peer(Peer),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    pub node: String,
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// This node's lease lapsed (a pause, or Redis unreachable): it may not claim rooms.
    #[error("this node's lease has lapsed")]
    NoLease,
    #[error("redis did not answer in time")]
    Timeout,
}

/// Owner keys outlive an idle room for this long (an idle room's owner reactivates it
/// under its own fence); running rooms refresh theirs.
const OWNER_TTL: Duration = Duration::from_secs(600);
/// Rooms owned elsewhere remembered per node (cleared when full: lookups refill it).
const OWNER_CACHE: usize = 200_000;

/// Claims a room over an absent or dead owner; answers the owner and its URL ('' for me).
/// A claimed room joins this node's set of owned rooms (read when the node dies).
const CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  local url = redis.call('GET', ARGV[2] .. cur)
  if url then return {cur, url} end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SADD', ARGV[4], ARGV[5])
return {ARGV[1], ''}
"#;

/// Which of KEYS still name this node (ARGV[1]): 1 or 0 each. Claims nothing: a room that
/// lapsed to nobody, or lived elsewhere meanwhile, is not this node's copy any more.
const HELD: &str = r#"
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then out[i] = 1 else out[i] = 0 end
end
return out
"#;

/// Renews this node's lease; 0 when it had lapsed (and was taken out again, and the node
/// is listed again among the cluster's nodes).
const RENEW: &str = r#"
if redis.call('PEXPIRE', KEYS[1], ARGV[2]) == 1 then return 1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', ARGV[3], ARGV[4])
return 0
"#;

/// Clears a dead node's records, unless it has come back meanwhile.
const FORGET_NODE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"#;

/// Gives a room up: its owner key if it is still this node's, and its entry in the set.
const RELEASE_ROOM: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"#;

/// Deletes a key only while it still holds this node's value.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Throttle windows (see `accounts::throttle`): a hash of hits counted (`n`), expiring a
/// window after its first hit or attempt, and beside it a count of attempts running that
/// expires `HOLD_TTL` after the last one began, so a hold whose end never arrived (a node
/// died, an answer was lost) cannot pin the window. The scripts answer -1 (go on), -2
/// (every hit left is held: busy) or the ms left of a used-up window.
const WINDOW_COMMON: &str = r#"
local function left()
  local t = redis.call('PTTL', KEYS[1])
  if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); t = tonumber(ARGV[2]) end
  return t
end
local function add(field, by)
  local created = redis.call('EXISTS', KEYS[1]) == 0
  redis.call('HINCRBY', KEYS[1], field, by)
  if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
"#;

/// A hit, counted at once (ARGV: limit, window ms).
const WINDOW_HIT: &str = r#"
if n >= tonumber(ARGV[1]) then return left() end
add('n', 1)
return -1
"#;

/// An attempt starts, holding a hit (ARGV: limit, window ms, hold ms).
const WINDOW_BEGIN: &str = r#"
if n >= tonumber(ARGV[1]) then return left() end
local h = tonumber(redis.call('GET', KEYS[2]) or '0')
if n + h >= tonumber(ARGV[1]) then return -2 end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
add('n', 0)
return -1
"#;

/// An attempt ends (ARGV: '1' if it failed, window ms): its hold goes, a failure counts.
const WINDOW_FINISH: &str = r#"
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
if ARGV[1] == '1' then add('n', 1) end
return -1
"#;

/// How long a throttle attempt's hold outlives the last attempt begun: longer than any
/// attempt runs (the hasher's queue wait and a hash), far shorter than a window.
const HOLD_TTL: Duration = Duration::from_secs(30);

pub struct Cluster {
    pub node_id: String,
    pub url: String,
    secret: crate::config::Secret,
    lease: Duration,
    prefix: String,
    redis: Arc<source::Source>,
    started: Instant,
    /// The lease is valid until this many ms after `started` (0: not yet / lapsed).
    valid_until_ms: AtomicU64,
    /// The last renewal could not reach Redis.
    degraded: AtomicBool,
    /// This node left (a graceful stop): it renews nothing and claims nothing any more.
    left: AtomicBool,
    /// Rooms known to be owned by other nodes.
    owners: DashMap<RoomKey, Peer>,
    /// Nonces of the node calls accepted lately (a replay is refused).
    pub seen: peer::Seen,
    /// A lapse was seen: the rooms must be checked (`confirm`) before the lease counts again.
    must_check: AtomicBool,
    claim: redis::Script,
    held: redis::Script,
    renew: redis::Script,
    release: redis::Script,
    forget_node: redis::Script,
    release_room: redis::Script,
    window_hit: redis::Script,
    window_begin: redis::Script,
    window_finish: redis::Script,
}

impl Cluster {
    /// Connects to Redis and takes this node's lease. `url` is how peers reach this node.
    pub async fn join(
        cfg: &ClusterConfig,
        node_id: String,
        url: String,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let lease = Duration::from_millis(cfg.lease_ms);
        let redis = source::Source::connect(
            cfg.redis_url.expose(),
            &cfg.sentinels,
            &cfg.sentinel_master,
            lease / 4,
        )
        .await?;
        let cluster = Arc::new(Cluster {
            node_id,
            url,
            secret: cfg.secret.clone(),
            lease,
            prefix: cfg.key_prefix.clone(),
            redis,
            started: Instant::now(),
            valid_until_ms: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            left: AtomicBool::new(false),
            owners: DashMap::new(),
            seen: peer::Seen::default(),
            must_check: AtomicBool::new(false),
            claim: redis::Script::new(CLAIM),
            held: redis::Script::new(HELD),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
            forget_node: redis::Script::new(FORGET_NODE),
            release_room: redis::Script::new(RELEASE_ROOM),
            window_hit: redis::Script::new(&format!("{WINDOW_COMMON}{WINDOW_HIT}")),
            window_begin: redis::Script::new(&format!("{WINDOW_COMMON}{WINDOW_BEGIN}")),
            window_finish: redis::Script::new(&format!("{WINDOW_COMMON}{WINDOW_FINISH}")),
        });
        // A node id already alive in Redis is another process's: refuse to join as it.
        let start = Instant::now();
        let mut conn = cluster.redis();
        let taken: bool = redis::cmd("SET")
            .arg(cluster.node_key(&cluster.node_id))
            .arg(&cluster.url)
            .arg("NX")
            .arg("PX")
            .arg(cfg.lease_ms)
            .query_async::<Option<String>>(&mut conn)
            .await?
            .is_none();
        if taken {
            return Err(ClusterError::Redis(redis::RedisError::from((
                redis::ErrorKind::Client,
                "cluster.node_id is held by another live node",
            ))));
        }
        redis::cmd("SADD")
            .arg(cluster.nodes_key())
            .arg(&cluster.node_id)
            .query_async::<()>(&mut conn)
            .await?;
        cluster.extend_lease(start);
        Ok(cluster)
    }

    pub fn secret(&self) -> &crate::config::Secret {
        &self.secret
    }

    /// A connection to the current primary.
    pub fn redis(&self) -> ConnectionManager {
        self.redis.conn()
    }

    /// For connections of their own (blocking reads, subscriptions).
    pub fn client(&self) -> redis::Client {
        self.redis.client()
    }

    /// A key of this cluster's.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    fn node_key(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }

    /// A room's owner key.
    fn room_key(&self, key: &RoomKey) -> String {
        format!("{}room:{}", self.prefix, room_field(key))
    }

    /// The set of rooms a node claimed.
    fn owned_key(&self, node: &str) -> String {
        format!("{}owned:{node}", self.prefix)
    }

    /// Every node that joined (and has not been cleared away after it died).
    fn nodes_key(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    async fn claim(&self, key: &RoomKey) -> Result<(String, String), ClusterError> {
        let mut conn = self.redis();
        Ok(self
            .claim
            .key(self.room_key(key))
            .arg(&self.node_id)
            .arg(self.node_key(""))
            .arg(OWNER_TTL.as_millis() as u64)
            .arg(self.owned_key(&self.node_id))
            .arg(room_field(key))
            .invoke_async(&mut conn)
            .await?)
    }

    /// The nodes that joined: those alive (sorted, this one included) and those whose lease
    /// has lapsed.
    pub async fn census(&self) -> Result<(Vec<String>, Vec<String>), ClusterError> {
        let mut conn = self.redis();
        let mut all: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.nodes_key())
            .query_async(&mut conn)
            .await?;
        all.sort();
        let mut pipe = redis::pipe();
        for n in &all {
            pipe.cmd("EXISTS").arg(self.node_key(n));
        }
        let alive: Vec<bool> = pipe.query_async(&mut conn).await?;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for (n, a) in all.into_iter().zip(alive) {
            if a || n == self.node_id {
                up.push(n);
            } else {
                down.push(n);
            }
        }
        Ok((up, down))
    }

    /// The live nodes as the dashboard shows them, and who owns each of `keys` (`None`:
    /// nobody yet). One bounded round of reads.
    pub async fn view(&self, keys: &[RoomKey]) -> Result<ClusterView, ClusterError> {
        let read = async {
            let (up, _) = self.census().await?;
            let mut conn = self.redis();
            let mut pipe = redis::pipe();
            for n in &up {
                pipe.cmd("GET").arg(self.node_key(n));
                pipe.cmd("SCARD").arg(self.owned_key(n));
            }
            let facts: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
            let nodes = up
                .into_iter()
                .zip(facts.chunks(2))
                .map(|(id, f)| NodeView {
                    url: redis::from_redis_value(f[0].clone()).unwrap_or_default(),
                    rooms: redis::from_redis_value(f[1].clone()).unwrap_or(0),
                    id,
                })
                .collect();
            let owners: Vec<Option<String>> = match keys.is_empty() {
                true => Vec::new(),
                false => {
                    let mut mget = redis::cmd("MGET");
                    for k in keys {
                        mget.arg(self.room_key(k));
                    }
                    mget.query_async(&mut conn).await?
                }
            };
            Ok::<_, ClusterError>(ClusterView {
                me: self.node_id.clone(),
                nodes,
                owners,
            })
        };
        tokio::time::timeout(self.call_timeout(), read)
            .await
            .map_err(|_| ClusterError::Timeout)?
    }

    /// The rooms a node claimed (some may have moved on since).
    pub async fn owned_by(&self, node: &str) -> Result<Vec<RoomKey>, ClusterError> {
        let mut conn = self.redis();
        let fields: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.owned_key(node))
            .query_async(&mut conn)
            .await?;
        Ok(fields.iter().filter_map(|f| parse_room_field(f)).collect())
    }

    /// Clears a dead node away once its rooms were seen to (not if it came back).
    pub async fn forget_node(&self, node: &str) -> Result<(), ClusterError> {
        let mut conn = self.redis();
        self.forget_node
            .key(self.node_key(node))
            .key(self.owned_key(node))
            .key(self.nodes_key())
            .arg(node)
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// Gives up a room this node claimed but does not hold (unknown, or no capacity), so
    /// claims of rooms that do not exist never pile up.
    pub async fn release_room(&self, key: &RoomKey) {
        let mut conn = self.redis();
        let _ = self
            .release_room
            .key(self.room_key(key))
            .key(self.owned_key(&self.node_id))
            .arg(&self.node_id)
            .arg(room_field(key))
            .invoke_async::<i64>(&mut conn)
            .await;
    }

    /// Milliseconds on this node's monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn extend_lease(&self, from: Instant) {
        let until = from.duration_since(self.started) + self.lease;
        self.valid_until_ms
            .store(until.as_millis() as u64, Ordering::Release);
    }

    /// Whether this node's lease is valid now, on its own clock.
    pub fn lease_valid(&self) -> bool {
        !self.has_left() && self.now_ms() < self.valid_until_ms.load(Ordering::Acquire)
    }

    pub fn has_left(&self) -> bool {
        self.left.load(Ordering::Acquire)
    }

    /// Redis could not be reached at the last renewal.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Who owns the room, claiming it for this node when it has no live owner. A cached
    /// peer answers without a round trip; `forget` drops one that proved wrong.
    pub async fn owner(&self, key: &RoomKey) -> Result<Owner, ClusterError> {
        if let Some(p) = self.owners.get(key) {
            return Ok(Owner::Peer(p.clone()));
        }
        if !self.lease_valid() {
            return Err(ClusterError::NoLease);
        }
        let (node, url) = self.claim(key).await?;
        if node == self.node_id {
            return Ok(Owner::Me);
        }
        let peer = Peer { node, url };
        if self.owners.len() >= OWNER_CACHE {
            self.owners.clear();
        }
        self.owners.insert(key.clone(), peer.clone());
        Ok(Owner::Peer(peer))
    }

    /// Forgets a cached owner that answered "not mine" or could not be reached.
    pub fn forget(&self, key: &RoomKey) {
        self.owners.remove(key);
    }

    /// Which of these rooms Redis still says are this node's, without a break; used after
    /// the lease lapsed, before acknowledging again. One script call per thousand rooms.
    pub async fn still_mine(&self, keys: &[RoomKey]) -> Result<Vec<bool>, ClusterError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(1000) {
            let mut call = self.held.prepare_invoke();
            for key in chunk {
                call.key(self.room_key(key));
            }
            call.arg(&self.node_id);
            let mut conn = self.redis();
            let held: Vec<i64> = call.invoke_async(&mut conn).await?;
            out.extend(held.into_iter().map(|h| h == 1));
        }
        Ok(out)
    }

    /// Keeps the owner keys of running rooms from expiring.
    pub async fn touch(&self, keys: &[RoomKey]) -> Result<(), ClusterError> {
        for chunk in keys.chunks(1000) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("PEXPIRE")
                    .arg(self.room_key(key))
                    .arg(OWNER_TTL.as_millis() as u64)
                    .ignore();
            }
            let mut conn = self.redis();
            pipe.query_async::<()>(&mut conn).await?;
        }
        Ok(())
    }

    /// One renewal. `Ok(false)`: the lease had lapsed and is taken out again, but the
    /// caller must check its rooms (`still_mine`) before it calls `confirm`.
    pub async fn renew(&self) -> Result<bool, ClusterError> {
        if self.has_left() {
            return Err(ClusterError::NoLease);
        }
        let start = Instant::now();
        let mut conn = self.redis();
        let r: Result<i64, _> = self
            .renew
            .key(self.node_key(&self.node_id))
            .arg(&self.url)
            .arg(self.lease.as_millis() as u64)
            .arg(self.nodes_key())
            .arg(&self.node_id)
            .invoke_async(&mut conn)
            .await;
        match r {
            // Renewed before it lapsed in Redis: nobody could have claimed a room (unless a
            // lapse seen earlier still waits for its check).
            Ok(1) if !self.must_check.load(Ordering::Acquire) => {
                self.extend_lease(start);
                self.degraded.store(false, Ordering::Release);
                Ok(true)
            }
            Ok(_) => {
                self.must_check.store(true, Ordering::Release);
                Ok(false)
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "redis unreachable: serving owned rooms only");
                }
                Err(e.into())
            }
        }
    }

    /// After a lapse, the rooms were checked: acknowledge again (from `renewed_at`).
    pub fn confirm(&self, renewed_at: Instant) {
        self.must_check.store(false, Ordering::Release);
        self.extend_lease(renewed_at);
        self.degraded.store(false, Ordering::Release);
    }

    /// A peer that does not answer a call in this long is as good as dead (its lease will
    /// lapse unless it is only slow).
    pub fn call_timeout(&self) -> Duration {
        self.lease
    }

    /// Runs a throttle window script on `name` (see `WINDOW_COMMON`), bounded by the call
    /// timeout, so a Redis outage costs a throttle its cluster-wide count, never a request
    /// its answer.
    async fn window(
        &self,
        script: &redis::Script,
        name: &str,
        arg: u64,
        window: Duration,
    ) -> Result<i64, ClusterError> {
        let mut conn = self.redis();
        let key = self.key(&format!("window:{name}"));
        let holds = self.key(&format!("window-holds:{name}"));
        let call = async {
            script
                .key(&key)
                .key(&holds)
                .arg(arg)
                .arg(window.as_millis().max(1) as u64)
                .arg(HOLD_TTL.as_millis() as u64)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        Ok(tokio::time::timeout(self.call_timeout(), call)
            .await
            .map_err(|_| ClusterError::Timeout)??)
    }

    /// Counts a hit of `name` in a window every node shares: `Some(retry)` when it is over
    /// `limit` (the refused hit is not counted).
    pub async fn window_hit(
        &self,
        name: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>, ClusterError> {
        let r = self
            .window(&self.window_hit, name, limit.into(), window)
            .await?;
        Ok((r >= 0).then(|| Duration::from_millis(r as u64)))
    }

    /// Starts an attempt in a shared window: `Ok(Ok(()))` go on (a hit is held until
    /// `window_finish`), `Ok(Err(None))` busy, `Ok(Err(Some(retry)))` used up.
    pub async fn window_begin(
        &self,
        name: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Result<(), Option<Duration>>, ClusterError> {
        let r = self
            .window(&self.window_begin, name, limit.into(), window)
            .await?;
        Ok(match r {
            -1 => Ok(()),
            r if r < 0 => Err(None),
            r => Err(Some(Duration::from_millis(r as u64))),
        })
    }

    /// Ends an attempt `window_begin` started (best effort: a hold that is never given
    /// back goes with its window).
    pub async fn window_finish(&self, name: &str, failed: bool, window: Duration) {
        let _ = self
            .window(&self.window_finish, name, failed.into(), window)
            .await;
    }

    /// How often the lease is renewed.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// Leaves the cluster (a graceful stop, after every room was written): gives up the
    /// rooms' owner keys and the lease, so others claim them at once.
    pub async fn leave(&self) {
        self.left.store(true, Ordering::Release);
        self.valid_until_ms.store(0, Ordering::Release);
        let keys = self.owned_by(&self.node_id).await.unwrap_or_default();
        let mut conn = self.redis();
        for key in &keys {
            let _ = self
                .release
                .key(self.room_key(key))
                .arg(&self.node_id)
                .invoke_async::<i64>(&mut conn)
                .await;
        }
        let _ = self
            .release
            .key(self.node_key(&self.node_id))
            .arg(&self.url)
            .invoke_async::<i64>(&mut conn)
            .await;
        let _ = self.forget_node(&self.node_id).await;
        tracing::info!(node = %self.node_id, rooms = keys.len(), "left the cluster");
    }

    /// Tells every node of an event (e.g. "revoked": forget verified tokens). Best effort:
    /// where it does not arrive, the receiver's own bound applies.
    pub async fn announce(&self, event: &str) {
        let mut conn = self.redis();
        let _ = redis::cmd("PUBLISH")
            .arg(self.key("events"))
            .arg(format!("{event} {}", self.node_id))
            .query_async::<i64>(&mut conn)
            .await;
    }

    /// Calls `handle` with each event another node announces, for as long as the process
    /// runs (resubscribing after a lost connection).
    pub fn spawn_events(self: &Arc<Self>, handle: impl Fn(&str) + Send + 'static) {
        let cluster = self.clone();
        actix::spawn(async move {
            loop {
                if cluster.has_left() {
                    return;
                }
                let connected =
                    tokio::time::timeout(cluster.lease, cluster.client().get_async_pubsub()).await;
                let Ok(Ok(mut pubsub)) = connected else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                if pubsub.subscribe(cluster.key("events")).await.is_err() {
                    continue;
                }
                let mut messages = pubsub.on_message();
                while let Some(m) = futures_util::StreamExt::next(&mut messages).await {
                    let text = String::from_utf8_lossy(m.get_payload_bytes()).to_string();
                    match text.rsplit_once(' ') {
                        Some((event, from)) if from != cluster.node_id => handle(event),
                        _ => {}
                    }
                }
            }
        });
    }
}

/// What the dashboard shows of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's id.
    pub me: String,
    /// The live nodes, sorted by id.
    pub nodes: Vec<NodeView>,
    /// The owner of each room asked about, in the order asked.
    pub owners: Vec<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub id: String,
    pub url: String,
    /// Rooms the node holds (live or idle).
    pub rooms: u64,
}

/// A room as a Redis field: the userid's length keeps any userid and file id apart.
pub fn room_field(key: &RoomKey) -> String {
    let vj = key.vj();
    format!("{}:{vj}{}", vj.len(), key.fileid())
}

pub fn parse_room_field(f: &str) -> Option<RoomKey> {
    let (len, rest) = f.split_once(':')?;
    let len: usize = len.parse().ok()?;
    if rest.len() < len || !rest.is_char_boundary(len) {
        return None;
    }
    let (vj, fileid) = rest.split_at(len);
    Some(RoomKey::from_parts(vj.to_string(), fileid.to_string()))
}

/// The same small number for a room on every node (FNV-1a): shares out a dead node's rooms.
pub fn room_hash(key: &RoomKey) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in room_field(key).bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// This machine's (or container's) host name, if it has one.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// A node id unique per process: host name, port, pid.
pub fn default_node_id(port: u16) -> String {
    let host = host_name().unwrap_or_else(|| "node".into());
    format!("{host}-{port}-{}", std::process::id())
}

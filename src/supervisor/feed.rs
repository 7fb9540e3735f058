//! The list across a cluster: every node keeps the whole index in memory (pages stay
//! in-memory reads), fed by the rooms' owners through Redis. Each owner publishes, once per
//! tick, the list entries its rooms changed: into a hash (the current entry of every room,
//! read by a node that starts or lost track) and a capped stream (the changes, followed by
//! every other node). An entry carries the fence its owner wrote it under: one from a node
//! that lost the room never replaces its new owner's.

use super::list::{ListEntry, SharedList};
use crate::cluster::room_field as field;
use crate::model::RoomKey;
use hashbrown::HashMap;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Stream entries kept (each is one owner's tick of changes).
const STREAM_LEN: usize = 10_000;
/// Changes read per stream read.
const READ_COUNT: usize = 500;

/// One room's list entry as published (`entry` None: not listed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedItem {
    pub key: RoomKey,
    pub fence: i64,
    pub entry: Option<WireEntry>,
    /// When the owner published it (Unix ms), for the staleness figure.
    #[serde(default)]
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireEntry {
    pub viewers: u64,
    pub timestamp: i64,
    pub seen_at: i64,
    pub json: String,
}

impl WireEntry {
    pub fn of(e: &ListEntry) -> Self {
        WireEntry {
            viewers: e.viewers,
            timestamp: e.timestamp,
            seen_at: e.seen_at,
            json: e.json.to_string(),
        }
    }
    fn into_entry(self) -> ListEntry {
        ListEntry {
            viewers: self.viewers,
            timestamp: self.timestamp,
            seen_at: self.seen_at,
            json: self.json.into(),
        }
    }
}

/// Where this node's feed lives in Redis, and who it is.
#[derive(Clone)]
pub struct FeedConfig {
    /// Connections come from it each time (they follow a Sentinel failover).
    pub cluster: Arc<crate::cluster::Cluster>,
    pub hash_key: String,
    pub stream_key: String,
    pub health: Arc<crate::metrics::Health>,
}

/// The supervisor's side: batches of changed entries go out in order.
#[derive(Clone)]
pub struct Publisher(mpsc::UnboundedSender<Vec<FeedItem>>);

impl Publisher {
    pub fn publish(&self, batch: Vec<FeedItem>) {
        let _ = self.0.send(batch);
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Starts the publisher. While Redis is away the latest entry of each room waits (one per
/// room: memory stays bounded by the rooms) and goes out when it is back.
pub fn spawn_publisher(cfg: FeedConfig) -> Publisher {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<FeedItem>>();
    actix::spawn(async move {
        let mut waiting: HashMap<RoomKey, FeedItem> = HashMap::new();
        let mut order: Vec<RoomKey> = Vec::new();
        let mut failing = false;
        loop {
            if waiting.is_empty() {
                match rx.recv().await {
                    Some(batch) => absorb(batch, &mut waiting, &mut order),
                    None => return,
                }
            }
            // Whatever else arrived meanwhile goes out in the same write.
            while let Ok(batch) = rx.try_recv() {
                absorb(batch, &mut waiting, &mut order);
            }
            let items: Vec<&FeedItem> = order.iter().filter_map(|k| waiting.get(k)).collect();
            match write(&mut cfg.cluster.redis(), &cfg, &items).await {
                Ok(()) => {
                    waiting.clear();
                    order.clear();
                    if std::mem::take(&mut failing) {
                        tracing::info!("list feed written again");
                    }
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, rooms = waiting.len(), "list feed not written; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    Publisher(tx)
}

/// Keeps the latest item of each room, in the order rooms first changed.
fn absorb(
    batch: Vec<FeedItem>,
    waiting: &mut HashMap<RoomKey, FeedItem>,
    order: &mut Vec<RoomKey>,
) {
    for item in batch {
        let key = item.key.clone();
        if waiting.insert(key.clone(), item).is_none() {
            order.push(key);
        }
    }
}

async fn write(
    conn: &mut ConnectionManager,
    cfg: &FeedConfig,
    items: &[&FeedItem],
) -> redis::RedisResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let at = now_ms();
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut batch = Vec::with_capacity(items.len());
    for item in items {
        let mut item = (*item).clone();
        if item.at_ms == 0 {
            item.at_ms = at;
        }
        let text = serde_json::to_string(&item).unwrap_or_default();
        match item.entry {
            Some(_) => pipe.hset(&cfg.hash_key, field(&item.key), &text).ignore(),
            None => pipe.hdel(&cfg.hash_key, field(&item.key)).ignore(),
        };
        batch.push(item);
    }
    let data = serde_json::to_string(&batch).unwrap_or_default();
    pipe.cmd("XADD")
        .arg(&cfg.stream_key)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_LEN)
        .arg("*")
        .arg("n")
        .arg(&cfg.cluster.node_id)
        .arg("d")
        .arg(data)
        .ignore();
    pipe.query_async::<()>(conn).await
}

/// Follows the other owners' changes into this node's index: the hash first, then the
/// stream from where the hash was read; after any failure, the hash again.
pub fn spawn_follower(cfg: FeedConfig, list: SharedList) {
    actix::spawn(async move {
        let mut fences: HashMap<RoomKey, i64> = HashMap::new();
        loop {
            if let Err(e) = follow(&cfg, &list, &mut fences).await {
                tracing::warn!(error = %e, "list feed interrupted; reading it again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
}

fn apply(
    list: &SharedList,
    fences: &mut HashMap<RoomKey, i64>,
    items: Vec<FeedItem>,
    staleness: Option<&crate::metrics::Histogram>,
) {
    let now = now_ms();
    let mut index = list.write().unwrap_or_else(|e| e.into_inner());
    for item in items {
        let known = fences.get(&item.key).copied().unwrap_or(i64::MIN);
        if item.fence < known {
            continue;
        }
        if let Some(h) = staleness {
            if item.at_ms > 0 {
                h.observe(Duration::from_millis((now - item.at_ms).max(0) as u64));
            }
        }
        fences.insert(item.key.clone(), item.fence);
        index.set_entry(&item.key, item.entry.map(WireEntry::into_entry));
    }
}

type XreadReply = Option<Vec<(String, Vec<(String, Vec<String>)>)>>;

async fn follow(
    cfg: &FeedConfig,
    list: &SharedList,
    fences: &mut HashMap<RoomKey, i64>,
) -> redis::RedisResult<()> {
    let conn_cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let mut conn = cfg
        .cluster
        .client()
        .get_multiplexed_async_connection_with_config(&conn_cfg)
        .await?;
    // Where the stream is now: changes after it are read from the stream, those before
    // are in the hash.
    let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg(&cfg.stream_key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await?;
    let mut last_id = last.first().map_or("0-0".to_string(), |(id, _)| id.clone());
    let started = Instant::now();
    let mut cursor: u64 = 0;
    let mut rooms = 0usize;
    // Rooms this follower listed from other nodes: one missing from the hash now left the
    // list while this node was not following (its removal is not in the stream any more).
    let mut unseen: hashbrown::HashSet<RoomKey> = fences.keys().cloned().collect();
    loop {
        let (next, kv): (u64, Vec<String>) = redis::cmd("HSCAN")
            .arg(&cfg.hash_key)
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        let items: Vec<FeedItem> = kv
            .chunks(2)
            .filter_map(|p| p.get(1))
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect();
        rooms += items.len();
        for i in &items {
            unseen.remove(&i.key);
        }
        apply(list, fences, items, None);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    tracing::info!(
        rooms,
        ms = started.elapsed().as_millis() as u64,
        "list feed: read the cluster's list"
    );
    loop {
        let reply: XreadReply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(&cfg.stream_key)
            .arg(&last_id)
            .query_async(&mut conn)
            .await?;
        let Some(streams) = reply else { continue };
        for (_, entries) in streams {
            for (id, fields) in entries {
                last_id = id;
                let mut node = "";
                let mut data = "";
                for kv in fields.chunks(2) {
                    match (kv.first().map(String::as_str), kv.get(1)) {
                        (Some("n"), Some(v)) => node = v,
                        (Some("d"), Some(v)) => data = v,
                        _ => {}
                    }
                }
                // This node's own changes are in its index already.
                if node == cfg.cluster.node_id {
                    continue;
                }
                match serde_json::from_str::<Vec<FeedItem>>(data) {
                    Ok(items) => apply(list, fences, items, Some(&cfg.health.list_staleness)),
                    Err(e) => tracing::warn!(error = %e, "list feed: unreadable entry skipped"),
                }
            }
        }
    }
}

//! Realtime subscribers of rooms owned by another node. The owner publishes each coalesced
//! frame once, on the room's Redis channel, while some node listens; each listening node
//! relays it to its own sockets. Frames carry the publisher's stream id and a sequence
//! number: a node that sees a gap, a new stream (the room moved, or its publisher
//! restarted) or a lost Redis connection sends its sockets an absolute snapshot from the
//! owner before going on.

use super::fanout::{Frame, Queued};
use crate::cluster::Cluster;
use crate::model::RoomKey;
use dashmap::DashMap;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A relayed frame on the channel: `{stream}:{seq}\n{frame}`.
pub(super) fn encode(stream: u64, seq: u64, frame: &str) -> String {
    format!("{stream:x}:{seq}\n{frame}")
}

fn decode(payload: &[u8]) -> Option<(u64, u64, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (head, frame) = text.split_once('\n')?;
    let (stream, seq) = head.split_once(':')?;
    Some((
        u64::from_str_radix(stream, 16).ok()?,
        seq.parse().ok()?,
        frame,
    ))
}

/// One relayed room's sockets on this node.
#[derive(Default)]
pub(super) struct Hub {
    subs: Mutex<HashMap<u64, mpsc::Sender<Queued>>>,
    /// The stream and the last sequence number relayed.
    last: Mutex<Option<(u64, u64)>>,
}

impl Hub {
    pub fn len(&self) -> usize {
        self.subs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn add(&self, id: u64, tx: mpsc::Sender<Queued>, snapshot: Frame, stream: u64) {
        if tx.try_send(Queued::now(snapshot)).is_ok() {
            self.subs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, tx);
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|(s, _)| s != stream) {
            *last = Some((stream, 0));
        }
    }

    /// Removes a socket; true when none is left.
    pub fn remove(&self, id: u64) -> bool {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.remove(&id);
        subs.is_empty()
    }

    /// Sends a frame to every socket (a full queue lets its socket go).
    fn send(&self, frame: &Frame) {
        let q = || Queued::now(frame.clone());
        self.subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, tx| tx.try_send(q()).is_ok());
    }

    fn close_all(&self) {
        self.subs.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Takes a frame off the channel; false when the sockets need a snapshot first (a
    /// gap or a new stream).
    fn in_order(&self, stream: u64, seq: u64) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let ok = matches!(*last, Some((s, n)) if s == stream && (seq == n + 1 || n == 0));
        *last = Some((stream, seq));
        ok
    }

    /// A snapshot every socket gets after a gap.
    fn resync(&self, snapshot: Frame, stream: u64, seq: u64) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((stream, seq));
        self.send(&snapshot);
    }

    fn stream(&self) -> Option<u64> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(s, _)| s)
    }
}

/// Asks the owner for a room's snapshot and its publisher's stream (a forwarded call).
pub(super) type Resync = Arc<
    dyn Fn(RoomKey) -> futures_util::future::BoxFuture<'static, Option<(Frame, u64)>> + Send + Sync,
>;

/// This node's relayed rooms, and its Redis subscription to their channels.
pub(super) struct Relays {
    cluster: Arc<Cluster>,
    hubs: DashMap<String, (RoomKey, Arc<Hub>)>,
    control: mpsc::UnboundedSender<Control>,
}

enum Control {
    Subscribe(String, tokio::sync::oneshot::Sender<bool>),
    Unsubscribe(String),
}

impl Relays {
    /// Must run inside an actix `System` (the subscription's task lives there).
    pub fn start(cluster: Arc<Cluster>, resync: Resync) -> Arc<Relays> {
        let (control, rx) = mpsc::unbounded_channel();
        let relays = Arc::new(Relays {
            cluster,
            hubs: DashMap::new(),
            control,
        });
        actix::spawn(run(relays.clone(), rx, resync.clone()));
        actix::spawn(watch(relays.clone(), resync));
        relays
    }

    pub fn channel(cluster: &Cluster, key: &RoomKey) -> String {
        cluster.key(&format!("ws:{}", crate::cluster::room_field(key)))
    }

    /// The room's hub, subscribed to its channel before this returns (so no frame
    /// published after the caller's snapshot is missed).
    pub async fn hub(&self, key: &RoomKey) -> Option<Arc<Hub>> {
        let channel = Self::channel(&self.cluster, key);
        if let Some(h) = self.hubs.get(&channel) {
            return Some(h.1.clone());
        }
        let hub = self
            .hubs
            .entry(channel.clone())
            .or_insert_with(|| (key.clone(), Arc::new(Hub::default())))
            .1
            .clone();
        let (tx, done) = tokio::sync::oneshot::channel();
        let _ = self.control.send(Control::Subscribe(channel, tx));
        // Bounded: with Redis paused, a socket is refused in time rather than held.
        tokio::time::timeout(self.cluster.call_timeout(), done)
            .await
            .ok()
            .and_then(|r| r.ok())
            .filter(|ok| *ok)
            .map(|_| hub)
    }

    /// A socket left; the last one to leave ends the room's subscription.
    pub fn leave(&self, key: &RoomKey, id: u64) {
        let channel = Self::channel(&self.cluster, key);
        let empty = self.hubs.get(&channel).is_some_and(|h| h.1.remove(id));
        if empty
            && self
                .hubs
                .remove_if(&channel, |_, h| h.1.len() == 0)
                .is_some()
        {
            let _ = self.control.send(Control::Unsubscribe(channel));
        }
    }
}

/// Keeps the Redis subscription: relays each frame to its hub; on reconnection, every
/// hub resyncs (frames may have been missed).
async fn run(relays: Arc<Relays>, mut control: mpsc::UnboundedReceiver<Control>, resync: Resync) {
    loop {
        let pubsub = match relays.cluster.client().get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "realtime relay: cannot reach redis");
                // Requests to subscribe meanwhile fail at once.
                while let Ok(c) = control.try_recv() {
                    if let Control::Subscribe(_, done) = c {
                        let _ = done.send(false);
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let channels: Vec<String> = relays.hubs.iter().map(|e| e.key().clone()).collect();
        if !channels.is_empty() {
            if sink.subscribe(&channels).await.is_err() {
                continue;
            }
            for e in relays.hubs.iter() {
                spawn_resync(e.value().0.clone(), e.value().1.clone(), resync.clone());
            }
        }
        loop {
            tokio::select! {
                c = control.recv() => match c {
                    None => return,
                    Some(Control::Subscribe(ch, done)) => {
                        let ok = sink.subscribe(&ch).await.is_ok();
                        let _ = done.send(ok);
                        if !ok { break; }
                    }
                    Some(Control::Unsubscribe(ch)) => {
                        if sink.unsubscribe(&ch).await.is_err() { break; }
                    }
                },
                m = stream.next() => match m {
                    None => break,
                    Some(msg) => deliver(&relays, msg.get_channel_name(), msg.get_payload_bytes(), &resync),
                },
            }
        }
        tracing::warn!("realtime relay: redis subscription lost; resubscribing");
    }
}

fn deliver(relays: &Relays, channel: &str, payload: &[u8], resync: &Resync) {
    let Some(hub) = relays.hubs.get(channel).map(|h| (h.0.clone(), h.1.clone())) else {
        return;
    };
    let (key, hub) = hub;
    let Some((stream, seq, frame)) = decode(payload) else {
        return;
    };
    if !hub.in_order(stream, seq) {
        spawn_resync(key, hub.clone(), resync.clone());
        return;
    }
    let frame: Frame = frame.into();
    hub.send(&frame);
    if frame.starts_with(r#"{"event":"closed""#) {
        hub.close_all();
    }
}

fn spawn_resync(key: RoomKey, hub: Arc<Hub>, resync: Resync) {
    actix::spawn(async move {
        match resync(key).await {
            Some((snapshot, stream)) => hub.resync(snapshot, stream, 0),
            // The room is gone, or its owner cannot say: the sockets reconnect.
            None => {
                hub.send(&super::fanout::closed_frame(
                    "the room is not available here now; reconnect",
                ));
                hub.close_all();
            }
        }
    });
}

/// Asks every relayed room's owner now and then whether its stream is still the one
/// relayed: a quiet room whose owner died or moved is resynced from the new owner.
async fn watch(relays: Arc<Relays>, resync: Resync) {
    let mut tick = tokio::time::interval(relays.cluster.call_timeout());
    loop {
        tick.tick().await;
        if relays.cluster.has_left() {
            return;
        }
        let hubs: Vec<(RoomKey, Arc<Hub>)> = relays
            .hubs
            .iter()
            .map(|e| (e.0.clone(), e.1.clone()))
            .collect();
        for (key, hub) in hubs {
            match resync(key).await {
                Some((snapshot, stream)) if hub.stream() != Some(stream) => {
                    hub.resync(snapshot, stream, 0)
                }
                Some(_) => {}
                None => {
                    hub.send(&super::fanout::closed_frame(
                        "the room is not available here now; reconnect",
                    ));
                    hub.close_all();
                }
            }
        }
    }
}

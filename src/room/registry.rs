//! Room key → actor address. Rooms are activated on first use, one activation of a room at
//! a time, from the state the supervisor hands out (the store's row with every change not
//! yet in it). By default they run on the HTTP workers' own threads: a request then reaches
//! its room without waking another thread when both share a worker, and otherwise wakes a
//! thread that is already busy serving HTTP. A room whose worker stops hands its pending
//! changes to the supervisor as it goes, so a graceful shutdown loses nothing.

use super::{Room, RoomEnv, RoomError};
use crate::model::RoomKey;
use crate::supervisor::{LoadLiveRooms, LoadRoom};
use actix::prelude::*;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};

pub(super) struct Registry {
    /// Where rooms run: each HTTP worker adds itself as it starts (or a dedicated pool).
    arbiters: RwLock<Vec<ArbiterHandle>>,
    env: Arc<RoomEnv>,
    hasher: std::collections::hash_map::RandomState,
    /// Activations take the lock of their key's stripe: a room is read and started by one
    /// request at a time, so no activation can start from a state that another one, which
    /// began later, has already changed and handed over.
    activating: Box<[tokio::sync::Mutex<()>]>,
}

/// Activation locks: activations of rooms on one stripe wait for each other.
const ACTIVATION_STRIPES: usize = 256;

impl Registry {
    pub fn new(arbiters: Vec<ArbiterHandle>, env: Arc<RoomEnv>) -> Self {
        Registry {
            arbiters: RwLock::new(arbiters),
            env,
            hasher: Default::default(),
            activating: (0..ACTIVATION_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Lets rooms run on this arbiter (an HTTP worker, as it starts).
    pub fn add_arbiter(&self, arbiter: ArbiterHandle) {
        self.arbiters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(arbiter);
    }

    /// Room actors in memory, including those whose thread is stopping and that have not
    /// yet handed over their changes.
    pub fn alive(&self) -> usize {
        self.env.alive.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.env.rooms.len()
    }

    /// Starts a room on the arbiter its key hashes to, skipping arbiters that have stopped
    /// (a worker restarted after a panic). With none registered yet (start-up), it runs on
    /// the caller's arbiter.
    fn spawn(&self, room: Room, key: &RoomKey) -> Addr<Room> {
        let hash = self.hasher.hash_one(key) as usize;
        loop {
            let arbiter = {
                let list = self.arbiters.read().unwrap_or_else(|e| e.into_inner());
                if list.is_empty() {
                    return room.start();
                }
                list[hash % list.len()].clone()
            };
            if arbiter.spawn(std::future::ready(())) {
                return Room::start_in_arbiter(&arbiter, move |_| room);
            }
            self.arbiters
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|a| a.spawn(std::future::ready(())));
        }
    }

    /// The room's actor, activated from the store if needed; `None` if the room is unknown.
    pub async fn get(&self, key: &RoomKey) -> Result<Option<Addr<Room>>, RoomError> {
        self.get_or_activate(key, false).await
    }

    /// The room's actor; when it is not running, activated from its latest state, or
    /// (`create`, live rooms) created empty when the store does not know it.
    async fn get_or_activate(
        &self,
        key: &RoomKey,
        create: bool,
    ) -> Result<Option<Addr<Room>>, RoomError> {
        if let Some(a) = self.env.rooms.get(key) {
            return Ok(Some(a.clone()));
        }
        // Boxed: activation's states would otherwise make every call's future larger.
        Box::pin(self.activate(key, create)).await
    }

    /// `get_or_activate` for a room that is not running.
    async fn activate(&self, key: &RoomKey, create: bool) -> Result<Option<Addr<Room>>, RoomError> {
        let stripe = self.hasher.hash_one(key) as usize % self.activating.len();
        let _turn = self.activating[stripe].lock().await;
        // Activated while this request waited for its turn.
        if let Some(a) = self.env.rooms.get(key) {
            return Ok(Some(a.clone()));
        }
        self.check_capacity()?;
        // In a cluster a room is activated only by its owner: a call that raced a move (the
        // room was just dropped here) must not take it back without asking Redis.
        if let Some(c) = &self.env.cluster {
            c.forget(key);
            match c.owner(key).await {
                Ok(crate::cluster::Owner::Me) => {}
                Ok(crate::cluster::Owner::Peer(_)) => return Err(RoomError::NotOwner),
                Err(e) => return Err(RoomError::NoOwner(e.to_string())),
            }
        }
        // The room is not running: the last one to run handed everything over before it
        // left the map, so the supervisor's answer includes it.
        let record = self
            .env
            .supervisor
            .send(LoadRoom { key: key.clone() })
            .await
            .map_err(|_| RoomError::Unavailable)??;
        let env = &self.env;
        let room = match record {
            Some(record) => Room::new(record, env.clone()),
            None if create && key.is_live() => Room::empty_live(key.vj().to_string(), env.clone()),
            None => return Ok(None),
        };
        // The entry is vacant (this holds the key's turn); inserting under the map's shard
        // lock keeps a room that stops at once from taking itself out before it is in.
        let entry = self
            .env
            .rooms
            .entry(key.clone())
            .or_insert_with(|| self.spawn(room, key));
        Ok(Some(entry.clone()))
    }

    /// Activates many VJs' live rooms this node has just claimed (a dead node's), read in
    /// one batch. Holds the activation turns of every key it reads (taken in stripe order,
    /// so never in a cycle with another batch; single activations take one turn), so no
    /// request activates one of them from an older read meanwhile. Answers the rooms
    /// activated and the VJs not read (unknown to the batch read: load those one by one).
    pub async fn adopt_live(&self, vjs: Vec<String>) -> Result<(usize, Vec<String>), RoomError> {
        let vjs: Vec<String> = vjs
            .into_iter()
            .filter(|vj| !self.env.rooms.contains_key(&RoomKey::Live(vj.clone())))
            .collect();
        if vjs.is_empty() {
            return Ok((0, Vec::new()));
        }
        let mut stripes: Vec<usize> = vjs
            .iter()
            .map(|vj| {
                self.hasher.hash_one(RoomKey::Live(vj.clone())) as usize % self.activating.len()
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut turns = Vec::with_capacity(stripes.len());
        for i in stripes {
            turns.push(self.activating[i].lock().await);
        }
        // Started by a request before the turns were taken: that one holds the room (and
        // a batch read now would raise the fence under it).
        let mut vjs: Vec<String> = vjs
            .into_iter()
            .filter(|vj| !self.env.rooms.contains_key(&RoomKey::Live(vj.clone())))
            .collect();
        // Claimed a while ago (batches follow each other): still this node's? A node that
        // lapsed meanwhile may have lost them, and a read now would fence their new owner.
        if let Some(c) = &self.env.cluster {
            if !c.lease_valid() {
                return Err(RoomError::NoOwner("this node's lease lapsed".into()));
            }
            let keys: Vec<RoomKey> = vjs.iter().map(|vj| RoomKey::Live(vj.clone())).collect();
            let mine = c
                .still_mine(&keys)
                .await
                .map_err(|e| RoomError::NoOwner(e.to_string()))?;
            let mut mine = mine.into_iter();
            vjs.retain(|_| mine.next().unwrap_or(false));
        }
        let records = self
            .env
            .supervisor
            .send(LoadLiveRooms { vjs: vjs.clone() })
            .await
            .map_err(|_| RoomError::Unavailable)??;
        let mut read: std::collections::HashSet<String> = Default::default();
        let mut adopted = 0;
        for record in records {
            let key = record.key.clone();
            read.insert(key.vj().to_string());
            self.check_capacity()?;
            let room = Room::new(record, self.env.clone());
            self.env
                .rooms
                .entry(key.clone())
                .or_insert_with(|| self.spawn(room, &key));
            adopted += 1;
        }
        drop(turns);
        let unread = vjs.into_iter().filter(|vj| !read.contains(vj)).collect();
        Ok((adopted, unread))
    }

    /// Sends a message to a room, reactivating it if it stopped (idle) meanwhile.
    /// `None` when the room is unknown.
    pub async fn ask<M>(&self, key: &RoomKey, msg: M) -> Result<Option<M::Result>, RoomError>
    where
        M: Message + Send + Clone + 'static,
        M::Result: Send,
        Room: Handler<M>,
    {
        self.ask_room(key, msg, false).await
    }

    /// Like `ask`, on a VJ's live room, created empty (no broadcast yet) when it has none.
    pub async fn ask_live_or_new<M>(&self, userid: &str, msg: M) -> Result<M::Result, RoomError>
    where
        M: Message + Send + Clone + 'static,
        M::Result: Send,
        Room: Handler<M>,
    {
        let key = RoomKey::Live(userid.to_string());
        let answer = self.ask_room(&key, msg, true).await?;
        answer.ok_or(RoomError::Unavailable)
    }

    async fn ask_room<M>(
        &self,
        key: &RoomKey,
        msg: M,
        create: bool,
    ) -> Result<Option<M::Result>, RoomError>
    where
        M: Message + Send + Clone + 'static,
        M::Result: Send,
        Room: Handler<M>,
    {
        for _ in 0..3 {
            let Some(addr) = self.get_or_activate(key, create).await? else {
                return Ok(None);
            };
            match addr.send(msg.clone()).await {
                Ok(r) => return Ok(Some(r)),
                // Stopped while idle between lookup and send: look it up (reactivate) again.
                Err(MailboxError::Closed) => self.forget(key, &addr),
                Err(_) => return Err(RoomError::Unavailable),
            }
        }
        Err(RoomError::Unavailable)
    }

    /// Active rooms are bounded: each holds memory for its members.
    fn check_capacity(&self) -> Result<(), RoomError> {
        if self.env.rooms.len() >= self.env.cfg.max_rooms {
            return Err(RoomError::AtCapacity {
                max: self.env.cfg.max_rooms,
            });
        }
        Ok(())
    }

    pub fn max_subscribers(&self) -> usize {
        self.env.cfg.max_subscribers
    }

    pub fn store(&self) -> &Arc<dyn crate::store::Store> {
        &self.env.store
    }

    /// The room's actor if it is running (never activates it).
    pub fn running(&self, key: &RoomKey) -> Option<Addr<Room>> {
        self.env.rooms.get(key).map(|a| a.clone())
    }

    /// Forgets a room that stopped between lookup and send (the next lookup reactivates it).
    pub fn forget(&self, key: &RoomKey, addr: &Addr<Room>) {
        self.env.rooms.remove_if(key, |_, a| a == addr);
    }

    pub fn keys(&self) -> Vec<RoomKey> {
        self.env.rooms.iter().map(|e| e.key().clone()).collect()
    }

    pub fn all(&self) -> Vec<Addr<Room>> {
        self.env.rooms.iter().map(|e| e.value().clone()).collect()
    }
}

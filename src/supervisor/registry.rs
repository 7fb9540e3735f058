//! Room key → actor address. Rooms are activated from the store on first use and run on a
//! small pool of arbiters owned by the app (not the HTTP workers), so they outlive the HTTP
//! server during a graceful shutdown and can flush.

use crate::model::{RoomKey, RoomRecord};
use crate::room::{Room, RoomEnv};
use crate::store::StoreResult;
use actix::prelude::*;
use dashmap::DashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

pub struct Registry {
    rooms: DashMap<RoomKey, Addr<Room>>,
    arbiters: Vec<ArbiterHandle>,
    env: Arc<RoomEnv>,
    hasher: std::collections::hash_map::RandomState,
}

impl Registry {
    pub fn new(arbiters: Vec<ArbiterHandle>, env: Arc<RoomEnv>) -> Self {
        assert!(!arbiters.is_empty(), "at least one room arbiter");
        Registry {
            rooms: DashMap::new(),
            arbiters,
            env,
            hasher: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    fn arbiter_for(&self, key: &RoomKey) -> &ArbiterHandle {
        &self.arbiters[(self.hasher.hash_one(key) as usize) % self.arbiters.len()]
    }

    fn spawn(&self, room: Room, key: &RoomKey) -> Addr<Room> {
        Room::start_in_arbiter(self.arbiter_for(key), move |_| room)
    }

    /// The room's actor, activated from the store if needed; `None` if the room is unknown.
    pub async fn get(&self, key: &RoomKey) -> StoreResult<Option<Addr<Room>>> {
        if let Some(a) = self.rooms.get(key) {
            return Ok(Some(a.clone()));
        }
        let Some(record) = self.env.store.load_room(key).await? else {
            return Ok(None);
        };
        Ok(Some(self.activate(record)))
    }

    fn activate(&self, record: RoomRecord) -> Addr<Room> {
        let key = record.key.clone();
        // Another request may have activated it meanwhile: the first one wins.
        let entry = self
            .rooms
            .entry(key.clone())
            .or_insert_with(|| self.spawn(Room::new(record, self.env.clone()), &key));
        entry.clone()
    }

    /// A VJ's live room, created empty (no broadcast yet) when the VJ has none.
    pub async fn live_or_new(&self, userid: &str) -> StoreResult<Addr<Room>> {
        let key = RoomKey::Live(userid.to_string());
        if let Some(a) = self.get(&key).await? {
            return Ok(a);
        }
        let entry = self.rooms.entry(key.clone()).or_insert_with(|| {
            self.spawn(Room::empty_live(userid.to_string(), self.env.clone()), &key)
        });
        Ok(entry.clone())
    }

    /// Activates a room from a record the caller just wrote (a new recording).
    pub fn activate_record(&self, record: RoomRecord) -> Addr<Room> {
        self.activate(record)
    }

    pub fn all(&self) -> Vec<Addr<Room>> {
        self.rooms.iter().map(|e| e.value().clone()).collect()
    }
}

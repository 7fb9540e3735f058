//! What every request handler reaches: the use cases' view of a running server. It knows
//! nothing of HTTP; `app` builds it and wires the routes.

use crate::accounts::Accounts;
use crate::config::Config;
use crate::metrics::{Health, Metrics};
use crate::net::{Cidrs, ClientAddr};
use crate::room::Rooms;
use crate::store::{ContentStore, Store};
use crate::supervisor::SharedList;
use std::sync::Arc;

pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    /// The one door to the rooms.
    pub rooms: Rooms,
    /// The room lists: written by the supervisor, read here for FetchList.
    pub list: SharedList,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    /// Register, Login, Refresh and token checks, over the account tables of the same database.
    pub accounts: Arc<Accounts>,
    /// Short videos, reports and bans, over the same database.
    pub content: Arc<dyn ContentStore>,
    /// Who a request comes from (trusted reverse proxies name the client).
    pub clients: ClientAddr,
    /// Who may call the nginx-rtmp and SRS hooks (`media.trusted_addrs`).
    pub media_hooks: Cidrs,
    /// `GET /openapi.json`, built on its first request.
    pub openapi: std::sync::OnceLock<String>,
}

//! minilvb: an actor-based realtime room server for Mini LVB-style live-streaming apps.
//!
//! Where things are (dependencies run down this list, never up; no import circles):
//!
//! - `http/`: routes. `interface.rs` reads a body and writes the envelope, `callback.rs`
//!   the media-server hooks, `ws.rs` the realtime channel, `connections.rs` and `body.rs`
//!   the bounds on connections and bodies. `app.rs` builds everything and wires the routes.
//! - `actions/`: what each Action does: `Request` in, `returnData` out (`linkmic.rs`,
//!   `videos.rs` and `moderation.rs` hold the apps' co-host, short-video and moderation
//!   Actions).
//! - `media.rs`: what media-server events do to rooms.
//! - `upstream.rs`: calls to media services (Tencent's live API, nginx-rtmp's control).
//! - `protocol/`: the wire. `request.rs` parses a body into a typed `Request` (each Action's
//!   fields, name and guard), `error.rs` is the one place where failures become codes.
//! - `state.rs`: `AppState`, what handlers reach (no HTTP in it).
//! - `accounts/`: Register, Login, Refresh, tokens, who may act as whom.
//! - `room/`: `Rooms`, the one door to the rooms (typed methods, `RoomError`), and behind
//!   it the registry and the Room actor that owns a room's members, counters and status.
//! - `supervisor/`: `list.rs` + `index.rs`, the list index behind FetchList; `handover.rs`,
//!   how rooms hand their changes over; `mod.rs`, the supervisor actor that writes them to
//!   the database in batches (snapshots) and reads rooms back for activation.
//! - `store/`: all SQL (SQLite and MySQL/MariaDB through sqlx), behind the `Store` trait
//!   (rooms), `AccountStore` and `ContentStore` (short videos, reports, bans).
//! - `model.rs` (room data), `metrics.rs`, `sign/` (signatures), `net.rs` (addresses):
//!   leaves. `config.rs` (file, then environment) and `urls.rs` use only those.
//! - `secrets.rs`: secrets generated on a first run (config only).
//! - `check.rs`: `minilvb check`; `main.rs`: the command line.

pub mod accounts;
pub mod actions;
pub mod app;
pub mod check;
pub mod cluster;
pub mod config;
pub mod http;
pub mod media;
pub mod metrics;
pub mod model;
pub mod net;
pub mod protocol;
pub mod room;
pub mod secrets;
pub mod sign;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod upstream;
pub mod urls;

pub use app::Application;
pub use config::Config;
pub use state::AppState;

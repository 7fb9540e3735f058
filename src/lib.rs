//! minilvb: an actor-based realtime room server for Mini LVB-style live-streaming apps.

pub mod accounts;
pub mod actions;
pub mod app;
pub mod check;
pub mod config;
pub mod http;
pub mod media;
pub mod metrics;
pub mod model;
pub mod net;
pub mod protocol;
pub mod recordings;
pub mod room;
pub mod sign;
pub mod store;
pub mod supervisor;
pub mod urls;

pub use app::{AppState, Application};
pub use config::Config;

//! Configuration: defaults, then an optional TOML file, then `MINILVB_*` environment
//! variables (nested keys joined by `__`, e.g. `MINILVB_LIVE__PUSH_KEY`).

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::Path;

/// A string that never prints: `Debug` and `Display` show only whether it is set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(<unset>)"
        } else {
            "Secret(<redacted>)"
        })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub live: LiveConfig,
    pub cos: CosConfig,
    pub im: ImConfig,
    pub list: ListConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub record: RecordConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Seconds to wait for in-flight requests on shutdown.
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://minilvb.db?mode=rwc` (default) or `mysql://user:pass@host:3306/db`.
    pub url: Secret,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before a request fails with 500.
    pub acquire_timeout_secs: u64,
    /// Milliseconds between snapshots of dirty rooms.
    pub snapshot_interval_ms: u64,
    /// Most rooms written in one batched statement.
    pub snapshot_batch: usize,
    /// Longest back-off between retries while the database is down.
    pub max_backoff_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    pub bizid: String,
    /// Push hotlink-protection key (txSecret).
    pub push_key: Secret,
    /// Callback signature key.
    pub api_key: Secret,
    /// `{bizid}` is replaced by the bizid.
    pub push_host: String,
    pub play_host: String,
    /// Scheme and host for HTTP play URLs (flv, m3u8); `{bizid}` is replaced.
    pub http_play_base: String,
    pub app_name: String,
    /// Push URL validity in seconds.
    pub url_validity_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CosConfig {
    pub appid: String,
    pub bucket: String,
    pub region: String,
    pub secret_id: String,
    pub secret_key: Secret,
    pub validity_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImConfig {
    pub sdkappid: u64,
    pub secret_key: Secret,
    pub expire_secs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    /// viewercount desc, then start time desc, then userid.
    Popular,
    /// start time desc, then userid.
    Newest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListConfig {
    pub order: ListOrder,
    /// Milliseconds a room waits before telling the index about a change (coalescing).
    pub index_tick_ms: u64,
    /// Recordings younger than this many days are listed.
    pub recording_days: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_userid_len: usize,
    pub max_title_len: usize,
    pub max_url_len: usize,
    pub max_name_len: usize,
    /// Members one room may hold; EnterGroup beyond it answers 602.
    pub max_members_per_room: usize,
    /// Rooms (live and recording) this server will hold.
    pub max_rooms: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Required,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// Base URL under which self-hosted recordings are served.
    pub base_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
            workers: 0,
            shutdown_timeout_secs: 10,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::new("sqlite://minilvb.db?mode=rwc"),
            migrate_on_start: true,
            max_connections: 8,
            acquire_timeout_secs: 3,
            snapshot_interval_ms: 1000,
            snapshot_batch: 500,
            max_backoff_ms: 10_000,
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            bizid: String::new(),
            push_key: Secret::default(),
            api_key: Secret::default(),
            push_host: "{bizid}.livepush.myqcloud.com".into(),
            play_host: "{bizid}.liveplay.myqcloud.com".into(),
            http_play_base: "http://{bizid}.liveplay.myqcloud.com".into(),
            app_name: "live".into(),
            url_validity_secs: 86_400,
        }
    }
}

impl Default for CosConfig {
    fn default() -> Self {
        CosConfig {
            appid: String::new(),
            bucket: String::new(),
            region: String::new(),
            secret_id: String::new(),
            secret_key: Secret::default(),
            validity_secs: 3600,
        }
    }
}

impl Default for ImConfig {
    fn default() -> Self {
        ImConfig {
            sdkappid: 0,
            secret_key: Secret::default(),
            expire_secs: 15_552_000,
        }
    }
}

impl Default for ListConfig {
    fn default() -> Self {
        ListConfig {
            order: ListOrder::Popular,
            index_tick_ms: 50,
            recording_days: 7,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 64 * 1024,
            max_userid_len: 128,
            max_title_len: 256,
            max_url_len: 1024,
            max_name_len: 128,
            max_members_per_room: 1_000_000,
            max_rooms: 1_000_000,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Required,
        }
    }
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            base_url: "http://127.0.0.1:8081/recordings".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Layered load: defaults ← file (if given or `minilvb.toml` exists) ← environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(path, &vars)
    }

    pub fn load_from(path: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        let default_path = Path::new("minilvb.toml");
        let file = match path {
            Some(p) => Some(p),
            None if default_path.exists() => Some(default_path),
            None => None,
        };
        if let Some(p) = file {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    path: p.display().to_string(),
                    message: e.message().to_string(),
                })?;
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("MINILVB_") else {
                continue;
            };
            // Variables the CLI reads for itself are not configuration keys.
            if matches!(rest, "CONFIG" | "LOG" | "LOG_FORMAT" | "LOG_DIR")
                || rest.starts_with("TEST_")
            {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if path.len() == 1 && path[0] == "bind" {
                set_path(&mut table, &["server".into(), "bind".into()], value);
                continue;
            }
            if path.len() == 1 && path[0] == "database_url" {
                set_path(&mut table, &["database".into(), "url".into()], value);
                continue;
            }
            if path.len() != 2 || path.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::Env {
                    name: name.clone(),
                    message: "expected MINILVB_SECTION__KEY".into(),
                });
            }
            set_path(&mut table, &path, value);
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.limits.max_body_bytes < 256 {
            return bad("limits.max_body_bytes must be at least 256");
        }
        if self.database.snapshot_interval_ms == 0 || self.list.index_tick_ms == 0 {
            return bad("database.snapshot_interval_ms and list.index_tick_ms must be positive");
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections must be positive");
        }
        if self.database.snapshot_batch == 0 {
            return bad("database.snapshot_batch must be positive");
        }
        Ok(())
    }

    /// Problems worth a loud warning at start: signing keys that are not set.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.live.bizid.is_empty() {
            w.push(
                "live.bizid is not set: push and play URLs will not reach a real media server"
                    .into(),
            );
        }
        if self.live.push_key.is_empty() {
            w.push(
                "live.push_key is not set: RequestLVBAddr is refused and pushes cannot be verified"
                    .into(),
            );
        }
        if self.live.api_key.is_empty() {
            w.push("live.api_key is not set: Tencent callbacks are all refused".into());
        }
        if self.cos.secret_key.is_empty() || self.cos.appid.is_empty() || self.cos.bucket.is_empty()
        {
            w.push("cos.appid/bucket/secret_key are not all set: GetCOSSign is refused".into());
        }
        if self.im.sdkappid == 0 || self.im.secret_key.is_empty() {
            w.push("im.sdkappid/secret_key are not set: Login answers no IM UserSig".into());
        }
        if self.auth.mode == AuthMode::Off {
            w.push(
                "auth.mode = \"off\": any client may act as any userid (legacy open mode)".into(),
            );
        }
        w
    }
}

/// Environment values are strings; numbers and booleans are recognised so that typed keys
/// deserialize, while string keys that look numeric (a bizid) are converted back below.
fn set_path(table: &mut toml::Table, path: &[String], value: &str) {
    let mut cur = table;
    for key in &path[..path.len() - 1] {
        let entry = cur
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        cur = entry.as_table_mut().expect("just made a table");
    }
    let leaf = path[path.len() - 1].clone();
    let typed = if STRING_KEYS.contains(&leaf.as_str()) {
        toml::Value::String(value.to_string())
    } else if let Ok(i) = value.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = value.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(value.to_string())
    };
    cur.insert(leaf, typed);
}

/// Keys whose values are strings even when they look like numbers.
const STRING_KEYS: &[&str] = &[
    "bind",
    "url",
    "bizid",
    "push_key",
    "api_key",
    "push_host",
    "play_host",
    "http_play_base",
    "app_name",
    "appid",
    "bucket",
    "region",
    "secret_id",
    "secret_key",
    "base_url",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_nested_keys_and_keeps_numeric_strings() {
        let c = Config::load_from(
            None,
            &env(&[
                ("MINILVB_LIVE__BIZID", "2519"),
                ("MINILVB_LIVE__PUSH_KEY", "k"),
                ("MINILVB_DATABASE__SNAPSHOT_INTERVAL_MS", "250"),
                ("MINILVB_BIND", "0.0.0.0:9"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.live.bizid, "2519");
        assert_eq!(c.live.push_key.expose(), "k");
        assert_eq!(c.database.snapshot_interval_ms, 250);
        assert_eq!(c.server.bind, "0.0.0.0:9");
    }

    #[test]
    fn secrets_never_print() {
        let mut c = Config::default();
        c.live.push_key = Secret::new("topsecretvalue");
        c.database.url = Secret::new("mysql://u:hunter2@h/db");
        let s = format!("{c:?}");
        assert!(
            !s.contains("topsecretvalue") && !s.contains("hunter2"),
            "{s}"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Config::load_from(None, &env(&[("MINILVB_LIVE__NOPE", "1")])).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}

//! Configuration: defaults, then an optional TOML file, then `MINILVB_*` environment
//! variables (nested keys joined by `__`, e.g. `MINILVB_LIVE__PUSH_KEY`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

/// Serializes redacted: a dumped configuration never carries a secret.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    pub media: MediaConfig,
    pub ws: WsConfig,
    pub admin: AdminConfig,
    pub cluster: ClusterConfig,
    pub vod: VodConfig,
}

/// Tencent VOD client uploads (GetVodSignatureV2): the app uploads a short video straight
/// to VOD with a signature this server makes from the cloud API key pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VodConfig {
    pub secret_id: String,
    pub secret_key: Secret,
    /// The VOD task flow run on each upload (the original's `XIAOZHIBO-DEFAULT`); empty
    /// names none.
    pub procedure: String,
    /// Seconds a signature stays valid (at most 90 days, as VOD allows).
    pub validity_secs: u64,
}

impl Default for VodConfig {
    fn default() -> Self {
        VodConfig {
            secret_id: String::new(),
            secret_key: Secret::default(),
            procedure: String::new(),
            validity_secs: 86_400,
        }
    }
}

/// Several nodes on one Redis and one MySQL/MariaDB database (`redis_url` or `sentinels`
/// set); a single node, needing neither, when both are empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host:port/db`; may carry a password (it is never printed).
    pub redis_url: Secret,
    /// Sentinel addresses (`host:port`), instead of `redis_url`.
    pub sentinels: Vec<String>,
    pub sentinel_master: String,
    /// Unique per process; empty derives one from the host name, the port and the pid.
    pub node_id: String,
    /// How peers reach this node (`http://host:port`); empty: from `server.bind` and the
    /// port actually bound.
    pub advertise_url: String,
    /// Peers sign their requests to each other with it. Required in cluster mode.
    pub secret: Secret,
    /// A node whose lease is not renewed for this long is dead: its rooms may be claimed.
    pub lease_ms: u64,
    /// Every Redis key of this cluster starts with it (several clusters, or tests, can
    /// share one Redis).
    pub key_prefix: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: Secret::default(),
            sentinels: Vec::new(),
            sentinel_master: "mymaster".into(),
            node_id: String::new(),
            advertise_url: String::new(),
            secret: Secret::default(),
            lease_ms: 3000,
            key_prefix: "minilvb:".into(),
        }
    }
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty() || !self.sentinels.is_empty()
    }
}

/// The operators' dashboard (`GET /dashboard`, `GET /ws/dashboard`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Token an operator passes as `?token=` or `Authorization: Bearer` when
    /// `auth.mode = "required"`; unset, the dashboard is then disabled (403).
    /// With `auth.mode = "off"` the dashboard is open.
    pub token: Secret,
    /// How often the dashboard feed looks for changes (at least 100 ms).
    pub dashboard_interval_ms: u64,
    /// Live rooms, and recordings, each snapshot carries (at most 100).
    pub dashboard_rooms: usize,
    /// Dashboard feeds open at once (they also count towards `ws.max_connections`).
    pub dashboard_max_connections: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: Secret::default(),
            dashboard_interval_ms: 1000,
            dashboard_rooms: 50,
            dashboard_max_connections: 8,
        }
    }
}

/// The realtime room channel (`GET /ws/room/{liveuserid}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// A subscriber gets at most one `count` (and one batch of member events) per window.
    pub coalesce_ms: u64,
    /// Frames queued per connection; a subscriber whose queue is full is disconnected.
    pub send_queue: usize,
    /// A subscriber whose oldest queued frame is not taken by its socket within this many
    /// milliseconds of being queued is disconnected, however few frames are queued.
    pub max_lag_ms: u64,
    /// WebSocket connections this server accepts in total.
    pub max_connections: usize,
    /// Subscribers one room accepts.
    pub max_per_room: usize,
    /// Largest frame a client may send.
    pub max_frame_bytes: usize,
    /// The server pings this often...
    pub ping_interval_secs: u64,
    /// ...and drops a client it has not heard from for this long.
    pub timeout_secs: u64,
    /// Likes one connection may send per second; more are ignored with an error event.
    pub likes_per_sec: u32,
    /// Malformed frames tolerated before the connection is closed.
    pub max_errors: u32,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            coalesce_ms: 100,
            send_queue: 64,
            max_lag_ms: 5_000,
            max_connections: 50_000,
            max_per_room: 20_000,
            max_frame_bytes: 4096,
            ping_interval_secs: 10,
            timeout_secs: 30,
            likes_per_sec: 10,
            max_errors: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// Production: never generate a missing secret (see `secrets`); a MySQL/MariaDB
    /// database implies it.
    pub production: bool,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Dedicated threads for the room actors; 0 (the default) runs rooms on the HTTP
    /// workers' own threads, which saves a thread hand-off per request.
    pub room_threads: usize,
    /// Seconds to wait for in-flight requests on shutdown.
    pub shutdown_timeout_secs: u64,
    /// An idle room (offline, no members, no subscribers) frees its memory after this many
    /// seconds; its state stays in the database.
    pub room_idle_secs: u64,
    /// Reverse proxies (addresses or CIDRs) whose `proxy_header` names the client. From
    /// anyone else the header is ignored and the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies set: `x-forwarded-for` or `forwarded` (RFC 7239). Only
    /// one is read, so a client cannot slip in the one the proxy does not maintain.
    pub proxy_header: ProxyHeader,
}

pub use crate::net::ProxyHeader;

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Longest back-off between retries while the database is down.
    pub max_backoff_ms: u64,
    /// `false` only to measure the cost of persistence: counters and membership are then
    /// never written (rare writes — broadcasts, recordings, accounts — still are).
    pub persist_snapshots: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    pub bizid: String,
    /// Push hotlink-protection key (txSecret).
    pub push_key: Secret,
    /// Callback signature key; also signs calls to Tencent's live API (`api_url`).
    pub api_key: Secret,
    /// Playback hotlink-protection key: signs co-hosts' play URLs
    /// (RequestPlayUrlWithSignForLinkMic). Never the push key: a play signature made with
    /// it would be a valid push signature for that stream.
    pub play_key: Secret,
    /// The Tencent live APPID (not the IM sdkappid), for stream mixing and channel status.
    pub appid: String,
    /// Tencent's live API (`common_access`): stream mixing (MergeVideoStream) and cutting
    /// a banned VJ's stream. Calls need `appid` and `api_key`.
    pub api_url: String,
    /// Bound on one call to `api_url`, in milliseconds.
    pub api_timeout_ms: u64,
    /// `{bizid}` is replaced by the bizid.
    pub push_host: String,
    pub play_host: String,
    /// Scheme and host for HTTP play URLs (flv, m3u8); `{bizid}` is replaced.
    pub http_play_base: String,
    pub app_name: String,
    /// Push URL validity in seconds.
    pub url_validity_secs: u64,
    /// Query parameters appended to every push URL after the signature, as
    /// `name=value&name=value`: Tencent records a stream pushed with `record=...` (the
    /// original server's default); empty adds none.
    pub push_params: String,
    /// A live room's `playurl`: `flv` (HTTP-FLV, which Tencent's CDN serves), `rtmp`
    /// (`rtmp://{play_host}/{app}/{stream}`: nginx-rtmp serves no HTTP-FLV, and the iOS
    /// app rewrites `http:` to `https:`), or `auto`: `flv` when `http_play_base` is a
    /// Tencent host, `rtmp` for a self-hosted media server.
    pub live_playurl: LivePlayUrl,
    /// An online room whose media server sends signs of life (nginx-rtmp `on_update`, SRS
    /// `on_hls`, Tencent screenshots) and sent none for this many seconds goes offline; one
    /// whose media server never sent any stays listed until it ends. 0 disables the rule.
    pub stale_after_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivePlayUrl {
    Auto,
    Flv,
    Rtmp,
}

/// The media server on this machine that a configuration without a `live.bizid` points
/// at: nginx-rtmp started with `deploy/nginx-rtmp.local.conf` (RTMP, and HTTP for HLS and
/// recordings).
pub const LOCAL_RTMP_HOST: &str = "127.0.0.1:1935";
pub const LOCAL_HTTP_BASE: &str = "http://127.0.0.1:8081";

impl LiveConfig {
    /// Whether live rooms play over HTTP-FLV (else RTMP), `auto` resolved.
    pub fn plays_flv(&self) -> bool {
        match self.live_playurl {
            LivePlayUrl::Flv => true,
            LivePlayUrl::Rtmp => false,
            LivePlayUrl::Auto => {
                url_host(&self.http_play_base()).is_some_and(|h| h.ends_with(".myqcloud.com"))
            }
        }
    }

    /// A host template with `{bizid}` filled in; with no bizid, a template naming
    /// Tencent's per-bizid hosts means the local media server instead.
    fn resolve(&self, template: &str, local: &str) -> String {
        if self.bizid.is_empty() && template.contains("{bizid}") {
            local.to_string()
        } else {
            template.replace("{bizid}", &self.bizid)
        }
    }

    /// `push_host` as push URLs use it.
    pub fn push_host(&self) -> String {
        self.resolve(&self.push_host, LOCAL_RTMP_HOST)
    }

    /// `play_host` as RTMP play URLs use it.
    pub fn play_host(&self) -> String {
        self.resolve(&self.play_host, LOCAL_RTMP_HOST)
    }

    /// `http_play_base` as FLV and HLS play URLs use it.
    pub fn http_play_base(&self) -> String {
        self.resolve(&self.http_play_base, LOCAL_HTTP_BASE)
    }
}

/// The host of `scheme://host[:port]/...`, lower-cased.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next()?;
    Some(host.to_ascii_lowercase())
}

/// `name=value&...` with URL-safe names and values, or empty.
fn check_push_params(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    let safe = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~|,%".contains(&b))
    };
    for pair in p.split('&') {
        let ok = pair
            .split_once('=')
            .is_some_and(|(k, v)| safe(k) && safe(v));
        if !ok {
            return Err(format!(
                "live.push_params must be name=value pairs joined by '&' (letters, digits, \
                 '-_.~|,%'), got {pair:?}"
            ));
        }
        if ["bizid", "txSecret", "txTime"].contains(&pair.split('=').next().unwrap_or("")) {
            return Err("live.push_params must not set bizid, txSecret or txTime".into());
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CosConfig {
    pub appid: String,
    pub bucket: String,
    pub region: String,
    pub secret_id: String,
    pub secret_key: Secret,
    pub validity_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImConfig {
    pub sdkappid: u64,
    pub secret_key: Secret,
    pub expire_secs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    /// viewercount desc, then start time desc, then userid.
    Popular,
    /// start time desc, then userid.
    Newest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListConfig {
    pub order: ListOrder,
    /// Milliseconds a room waits before telling the index about a change (coalescing).
    pub index_tick_ms: u64,
    /// Recordings younger than this many days are listed.
    pub recording_days: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_userid_len: usize,
    pub max_title_len: usize,
    pub max_url_len: usize,
    pub max_name_len: usize,
    /// Members one room may hold; EnterGroup beyond it answers 602.
    pub max_members_per_room: usize,
    /// Rooms (live and recording) this server holds active at once.
    pub max_rooms: usize,
    /// A request's head must arrive within this many seconds, and its body within as many
    /// again after the head; then the connection is closed (408).
    pub request_timeout_secs: u64,
    /// Client connections open at once, WebSockets included; kept below the process's file
    /// descriptor limit at start. Connections past it are refused as they arrive.
    pub max_connections: usize,
    /// Connections one client address (an IPv6 /64) may hold open; trusted proxies are
    /// exempt. 0 = no limit.
    pub max_connections_per_addr: usize,
    /// Addresses (or CIDRs) bounded only by `max_connections`, not per address: by default
    /// the loopback addresses a local reverse proxy connects from.
    pub per_addr_exempt: Vec<String>,
    /// Short videos one user may keep (UploadUGCVideo beyond it answers 602).
    pub max_videos_per_user: u64,
    /// VJs one user may report (ReportUser of another VJ beyond it answers 602).
    pub max_reports_per_user: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Required,
    Off,
}

impl AuthMode {
    /// What the mode means for clients, the unmodified Mini LVB apps above all (they never
    /// call Login): said at start-up and by `minilvb check`, so the choice cannot be missed.
    pub fn meaning(self) -> &'static str {
        match self {
            AuthMode::Required => {
                "auth.mode = \"required\": acting as a userid needs that user's token (Register, \
                 then Login). Unmodified Mini LVB apps never call Login: their VJs get no push \
                 URL and their viewers are refused EnterGroup (498). To serve them, set \
                 auth.mode = \"off\" (MINILVB_AUTH__MODE=off)"
            }
            AuthMode::Off => {
                "auth.mode = \"off\": the legacy open protocol the unmodified Mini LVB apps \
                 speak; any client may act as any userid. Apps that Login should use \
                 auth.mode = \"required\""
            }
        }
    }
}

/// Accounts and access control (`[auth]`). Durations are seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `required` (default): actions on behalf of a user need that user's token.
    /// `off`: the legacy open protocol, any client may act as any userid.
    pub mode: AuthMode,
    /// Lifetime of an access token (Login/Refresh answer it as `expires`).
    pub token_ttl_secs: u64,
    /// Lifetime of a refresh token; each Refresh issues a new one with a fresh lifetime.
    pub refresh_ttl_secs: u64,
    /// Register attempts one client address (an IPv6 /64) may make per window; 0 = no limit.
    pub register_per_addr: u32,
    pub register_window_secs: u64,
    /// Login attempts with a wrong password one userid may take per window before Login
    /// answers 429 for it; 0 = no limit.
    pub login_failures_per_user: u32,
    pub login_window_secs: u64,
    /// Most addresses, and most userids, each throttle remembers; the oldest is forgotten
    /// first. Bounds the throttles' memory.
    pub throttle_capacity: usize,
    /// argon2id memory cost in KiB, for new password hashes (stored hashes carry their own).
    pub argon2_m_cost_kib: u32,
    /// argon2id passes.
    pub argon2_t_cost: u32,
    /// argon2id lanes.
    pub argon2_p_cost: u32,
    /// Password hashes computed at once (each holds `argon2_m_cost_kib` of memory);
    /// 0 = one per core.
    pub max_concurrent_hashes: usize,
}

impl AuthConfig {
    /// Largest argon2 memory cost accepted (1 GiB), in config and in stored hashes.
    pub const MAX_M_COST_KIB: u32 = 1 << 20;
    /// Largest argon2 pass count accepted.
    pub const MAX_T_COST: u32 = 64;
    /// Largest argon2 lane count accepted.
    pub const MAX_P_COST: u32 = 64;

    /// The argon2id parameters for new hashes, checked.
    pub fn argon2_params(&self) -> Result<argon2::Params, ConfigError> {
        let (m, t, p) = (
            self.argon2_m_cost_kib,
            self.argon2_t_cost,
            self.argon2_p_cost,
        );
        if m > Self::MAX_M_COST_KIB || t > Self::MAX_T_COST || p > Self::MAX_P_COST {
            return Err(ConfigError::Invalid(format!(
                "auth.argon2_* too large: at most m_cost {} KiB, t_cost {}, p_cost {}",
                Self::MAX_M_COST_KIB,
                Self::MAX_T_COST,
                Self::MAX_P_COST
            )));
        }
        argon2::Params::new(m, t, p, None).map_err(|e| {
            ConfigError::Invalid(format!(
                "auth.argon2_m_cost_kib/t_cost/p_cost are not valid argon2 parameters: {e} \
                 (t_cost >= 1, p_cost >= 1, m_cost_kib >= 8 * p_cost)"
            ))
        })
    }
}

/// Self-hosted media servers (nginx-rtmp, SRS).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Base URL under which the media server's recordings directory is served; a recorded
    /// file `x.flv` plays at `{recordings_base_url}/x.flv`.
    pub recordings_base_url: String,
    /// Client addresses (or CIDRs) allowed to call the nginx-rtmp and SRS hooks (they cannot
    /// sign).
    pub trusted_addrs: Vec<String>,
    /// nginx-rtmp's control module (`rtmp_control`), e.g. `http://127.0.0.1:8081/control`:
    /// a banned or stopped VJ's stream is cut there. Empty: streams end on their own.
    pub nginx_control_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
            production: false,
            workers: 0,
            room_threads: 0,
            shutdown_timeout_secs: 10,
            room_idle_secs: 60,
            trusted_proxies: Vec::new(),
            proxy_header: ProxyHeader::XForwardedFor,
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
            max_backoff_ms: 10_000,
            persist_snapshots: true,
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            bizid: String::new(),
            push_key: Secret::default(),
            api_key: Secret::default(),
            play_key: Secret::default(),
            appid: String::new(),
            api_url: "http://fcgi.video.qcloud.com/common_access".into(),
            api_timeout_ms: 5000,
            push_host: "{bizid}.livepush.myqcloud.com".into(),
            play_host: "{bizid}.liveplay.myqcloud.com".into(),
            http_play_base: "http://{bizid}.liveplay.myqcloud.com".into(),
            app_name: "live".into(),
            url_validity_secs: 86_400,
            push_params: "record=flv|hls&record_interval=10800".into(),
            live_playurl: LivePlayUrl::Auto,
            stale_after_secs: 600,
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
            request_timeout_secs: 5,
            max_connections: 60_000,
            max_connections_per_addr: 512,
            per_addr_exempt: vec!["127.0.0.1".into(), "::1".into()],
            max_videos_per_user: 1000,
            max_reports_per_user: 200,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Required,
            token_ttl_secs: 7200,
            refresh_ttl_secs: 30 * 86_400,
            register_per_addr: 5,
            register_window_secs: 3600,
            login_failures_per_user: 10,
            login_window_secs: 900,
            throttle_capacity: 100_000,
            // About 5.5 ms per hash on an idle core in release; see src/accounts/passwords.rs.
            argon2_m_cost_kib: 8192,
            argon2_t_cost: 2,
            argon2_p_cost: 1,
            max_concurrent_hashes: 0,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            recordings_base_url: "http://127.0.0.1:8081/recordings".into(),
            trusted_addrs: vec!["127.0.0.1".into(), "::1".into()],
            nginx_control_url: String::new(),
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
        // The defaults say what type each key has, and so how its environment string reads.
        let schema = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
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
            let mut path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            match path.as_slice() {
                [one] if one == "bind" => path = vec!["server".into(), "bind".into()],
                [one] if one == "database_url" => path = vec!["database".into(), "url".into()],
                _ => {}
            }
            if path.len() != 2 || path.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::Env {
                    name: name.clone(),
                    message: "expected MINILVB_SECTION__KEY".into(),
                });
            }
            let (section, key) = (&path[0], &path[1]);
            let typed = match schema.get(section).and_then(|s| s.get(key)) {
                Some(like) => typed_like(like, value).map_err(|message| ConfigError::Env {
                    name: name.clone(),
                    message,
                })?,
                // Unknown: the load reports it by name.
                None => toml::Value::String(value.to_string()),
            };
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let Some(t) = entry.as_table_mut() {
                t.insert(key.clone(), typed);
            }
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
        if self.limits.request_timeout_secs == 0 || self.limits.max_connections == 0 {
            return bad("limits.request_timeout_secs and limits.max_connections must be positive");
        }
        // Bounded so that deadlines computed from them cannot overflow a clock.
        if self.limits.request_timeout_secs > 3600 {
            return bad("limits.request_timeout_secs must be at most 3600");
        }
        if self.ws.max_lag_ms == 0 || self.ws.max_lag_ms > 3_600_000 {
            return bad("ws.max_lag_ms must be between 1 and 3600000");
        }
        if let Err(e) = crate::net::Cidrs::parse(&self.server.trusted_proxies) {
            return Err(ConfigError::Invalid(format!("server.trusted_proxies: {e}")));
        }
        if let Err(e) = crate::net::Cidrs::parse(&self.limits.per_addr_exempt) {
            return Err(ConfigError::Invalid(format!("limits.per_addr_exempt: {e}")));
        }
        if let Err(e) = crate::net::Cidrs::parse(&self.media.trusted_addrs) {
            return Err(ConfigError::Invalid(format!("media.trusted_addrs: {e}")));
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections must be positive");
        }
        check_push_params(&self.live.push_params).map_err(ConfigError::Invalid)?;
        // A play URL signed with the push key is a push URL for that stream.
        if !self.live.play_key.is_empty()
            && self.live.play_key.expose() == self.live.push_key.expose()
        {
            return bad("live.play_key must not be the push key: a play URL signed with it could be used to push");
        }
        if !(1..=7_776_000).contains(&self.vod.validity_secs) {
            return bad("vod.validity_secs must be between 1 and 7776000 (90 days)");
        }
        if !(100..=60_000).contains(&self.live.api_timeout_ms) {
            return bad("live.api_timeout_ms must be between 100 and 60000");
        }
        for (name, url) in [
            ("live.api_url", &self.live.api_url),
            ("media.nginx_control_url", &self.media.nginx_control_url),
        ] {
            // No TLS client is built in: Tencent's API and nginx's control are plain HTTP.
            if !(url.is_empty() || url.starts_with("http://")) {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be an http:// URL"
                )));
            }
        }
        let a = &self.auth;
        if a.token_ttl_secs == 0 || a.refresh_ttl_secs == 0 {
            return bad("auth.token_ttl_secs and auth.refresh_ttl_secs must be positive");
        }
        if a.register_window_secs == 0 || a.login_window_secs == 0 {
            return bad("auth.register_window_secs and auth.login_window_secs must be positive");
        }
        if a.throttle_capacity == 0 {
            return bad("auth.throttle_capacity must be positive");
        }
        a.argon2_params()?;
        self.validate_cluster()
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        if !c.enabled() {
            return Ok(());
        }
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if !c.redis_url.is_empty() && !c.sentinels.is_empty() {
            return bad("cluster.redis_url and cluster.sentinels are alternatives: set one");
        }
        if !c.sentinels.is_empty() && c.sentinel_master.is_empty() {
            return bad("cluster.sentinels needs cluster.sentinel_master");
        }
        if c.secret.expose().len() < 16 {
            return bad(
                "cluster mode needs cluster.secret (at least 16 characters): peers sign \
                 their requests to each other with it",
            );
        }
        let db = self.database.url.expose();
        if !(db.starts_with("mysql:") || db.starts_with("mariadb:")) {
            return bad(
                "cluster mode needs a shared MySQL/MariaDB database (database.url = \
                 \"mysql://...\"); an embedded SQLite file serves one node only",
            );
        }
        if !(300..=60_000).contains(&c.lease_ms) {
            return bad("cluster.lease_ms must be between 300 and 60000");
        }
        if c.key_prefix.is_empty() || c.key_prefix.len() > 64 {
            return bad("cluster.key_prefix must be 1 to 64 characters");
        }
        let url = &c.advertise_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return bad("cluster.advertise_url must be an http:// or https:// URL");
        }
        Ok(())
    }

    /// Problems worth a loud warning at start: signing keys that are not set.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
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
            w.push("im.sdkappid/secret_key are not set: Login answers an empty IM UserSig".into());
        }
        if self.auth.mode == AuthMode::Required && self.admin.token.is_empty() {
            w.push("admin.token is not set: /dashboard is disabled".into());
        }
        w
    }
}

/// An environment string read as the type of `like` (the key's default): a list splits on
/// commas, a number or a boolean must parse, anything else is the string itself. These
/// errors do not repeat the value: it could be a secret set under the wrong name.
fn typed_like(like: &toml::Value, value: &str) -> Result<toml::Value, String> {
    use toml::Value as V;
    Ok(match like {
        V::Array(_) => V::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| V::String(v.into()))
                .collect(),
        ),
        V::Integer(_) => V::Integer(
            value
                .trim()
                .parse()
                .map_err(|_| "expected an integer".to_string())?,
        ),
        V::Float(_) => V::Float(
            value
                .trim()
                .parse()
                .map_err(|_| "expected a number".to_string())?,
        ),
        V::Boolean(_) => V::Boolean(
            value
                .trim()
                .parse()
                .map_err(|_| "expected true or false".to_string())?,
        ),
        _ => V::String(value.to_string()),
    })
}

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
    fn cluster_mode_needs_a_secret_and_a_shared_database() {
        let redis = ("MINILVB_CLUSTER__REDIS_URL", "redis://127.0.0.1:6379");
        let mysql = ("MINILVB_DATABASE__URL", "mysql://u:p@127.0.0.1/db");
        let secret = ("MINILVB_CLUSTER__SECRET", "0123456789abcdef0123");
        let err = |pairs: &[(&str, &str)]| {
            Config::load_from(None, &env(pairs))
                .unwrap_err()
                .to_string()
        };
        // No secret: refused, by name.
        let e = err(&[redis, mysql]);
        assert!(e.contains("cluster.secret"), "{e}");
        // The embedded SQLite default serves one node only.
        let e = err(&[redis, secret]);
        assert!(e.contains("MySQL/MariaDB") && e.contains("SQLite"), "{e}");
        let e = err(&[redis, secret, mysql, ("MINILVB_CLUSTER__LEASE_MS", "10")]);
        assert!(e.contains("cluster.lease_ms"), "{e}");
        let e = err(&[
            redis,
            secret,
            mysql,
            ("MINILVB_CLUSTER__ADVERTISE_URL", "node-2:8080"),
        ]);
        assert!(e.contains("advertise_url"), "{e}");
        let c = Config::load_from(None, &env(&[redis, secret, mysql])).unwrap();
        assert!(c.cluster.enabled());
        assert_eq!(c.cluster.lease_ms, 3000);
        // The secret never prints.
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
        // Unset: a single node, as before.
        assert!(!Config::default().cluster.enabled());
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

    /// Every key has a line in minilvb.example.toml, and the example parses as it is.
    #[test]
    fn the_example_documents_every_key() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/minilvb.example.toml"))
                .unwrap();
        let example: toml::Table = text.parse().unwrap();
        let _: Config = toml::Value::Table(example.clone())
            .try_into()
            .expect("the example is a valid config");
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in defaults {
            let documented = example.get(&section).and_then(|v| v.as_table());
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    documented.is_some_and(|t| t.contains_key(key)),
                    "{section}.{key} is not in minilvb.example.toml"
                );
            }
        }
    }

    /// Every key of every section can be set from the environment: each default, written
    /// as an environment string, loads back to the same configuration.
    #[test]
    fn every_key_reads_from_the_environment() {
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let mut vars = Vec::new();
        for (section, keys) in &defaults {
            for (key, v) in keys.as_table().unwrap() {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Array(a) => a
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                let name = format!("MINILVB_{}__{}", section, key).to_ascii_uppercase();
                vars.push((name, text));
            }
        }
        assert!(vars.len() > 50, "{}", vars.len());
        let c = Config::load_from(None, &vars).unwrap();
        assert_eq!(toml::Table::try_from(c).unwrap(), defaults);
        // Lists split on commas; numbers that name strings stay strings; bad types say so.
        let c = Config::load_from(
            None,
            &env(&[
                ("MINILVB_SERVER__TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"),
                ("MINILVB_COS__APPID", "1252033264"),
                ("MINILVB_ADMIN__TOKEN", "12345"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.trusted_proxies, ["10.0.0.0/8", "192.0.2.1"]);
        assert_eq!(c.cos.appid, "1252033264");
        assert_eq!(c.admin.token.expose(), "12345");
        let e = Config::load_from(None, &env(&[("MINILVB_SERVER__WORKERS", "two")])).unwrap_err();
        assert!(
            e.to_string().contains("MINILVB_SERVER__WORKERS") && e.to_string().contains("integer"),
            "{e}"
        );
    }

    #[test]
    fn push_params_and_live_playurl() {
        let c = Config::load_from(None, &env(&[("MINILVB_LIVE__PUSH_PARAMS", "")])).unwrap();
        assert_eq!(c.live.push_params, "");
        for bad in ["a", "a=b&", "a=b c", "txSecret=1", "a=b#c", "=1", "a=?"] {
            let e = Config::load_from(None, &env(&[("MINILVB_LIVE__PUSH_PARAMS", bad)]));
            assert!(e.is_err(), "{bad:?} accepted");
        }
        let mut live = LiveConfig::default();
        // No bizid: the local media server, which plays RTMP.
        assert!(!live.plays_flv());
        assert_eq!(live.push_host(), LOCAL_RTMP_HOST);
        assert_eq!(live.http_play_base(), LOCAL_HTTP_BASE);
        live.bizid = "8888".into();
        assert!(live.plays_flv(), "Tencent's default host plays HTTP-FLV");
        assert_eq!(live.push_host(), "8888.livepush.myqcloud.com");
        live.http_play_base = "http://8888.liveplay.myqcloud.com".into();
        assert!(live.plays_flv());
        for own in [
            "http://127.0.0.1:8081",
            "https://media.example.com/",
            "http://myqcloud.com.evil",
        ] {
            live.http_play_base = own.into();
            assert!(!live.plays_flv(), "{own}: a self-hosted server plays RTMP");
        }
        live.live_playurl = LivePlayUrl::Flv;
        assert!(live.plays_flv());
        live.live_playurl = LivePlayUrl::Rtmp;
        live.http_play_base = LiveConfig::default().http_play_base;
        assert!(!live.plays_flv());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Config::load_from(None, &env(&[("MINILVB_LIVE__NOPE", "1")])).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn auth_keys_load_and_are_checked() {
        let c = Config::load_from(
            None,
            &env(&[
                ("MINILVB_AUTH__MODE", "off"),
                ("MINILVB_AUTH__TOKEN_TTL_SECS", "60"),
                ("MINILVB_AUTH__ARGON2_M_COST_KIB", "4096"),
            ]),
        )
        .unwrap();
        assert_eq!(c.auth.mode, AuthMode::Off);
        assert_eq!(c.auth.token_ttl_secs, 60);
        assert_eq!(c.auth.argon2_params().unwrap().m_cost(), 4096);
        assert!(AuthConfig::default().argon2_params().is_ok());
        for (k, v) in [
            ("MINILVB_AUTH__ARGON2_T_COST", "0"),
            ("MINILVB_AUTH__ARGON2_M_COST_KIB", "4"),
            ("MINILVB_AUTH__ARGON2_M_COST_KIB", "4294967295"),
            ("MINILVB_AUTH__LOGIN_WINDOW_SECS", "0"),
            ("MINILVB_AUTH__TOKEN_TTL_SECS", "0"),
            ("MINILVB_AUTH__THROTTLE_CAPACITY", "0"),
        ] {
            let e = Config::load_from(None, &env(&[(k, v)])).unwrap_err();
            assert!(e.to_string().contains("auth."), "{k}={v}: {e}");
        }
    }
}

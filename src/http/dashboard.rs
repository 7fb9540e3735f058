//! `GET /dashboard`: a page for operators showing live rooms and recent
//! recordings, and `GET /ws/dashboard`, its feed: a JSON snapshot of the first rooms of both
//! lists, sent when it changed (looked at every `admin.dashboard_interval_ms`).
//!
//! With `auth.mode = "required"` both need `admin.token` (`?token=` or `Authorization:
//! Bearer`); an unset token then disables the dashboard. With `auth.mode = "off"` they are
//! open: the lists are public through FetchList anyway.
//!
//! Its operator actions (`GET /dashboard/moderation`, `POST /dashboard/stop` and
//! `/dashboard/ban`: end a broadcast, ban or unban a VJ, see reports) need the admin token
//! in every mode, as StopLVB and ForbidLive do.

use crate::config::AuthMode;
use crate::protocol::request::ListFlag;
use crate::protocol::types::PusherInfo;
use crate::protocol::{envelope, ApiError, Code};
use crate::sign::{check_token, TokenRefusal};
use crate::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The page: one self-contained file, inline CSS and JS, no external assets.
const PAGE: &str = include_str!("dashboard.html");

/// Most rooms (and recordings) one snapshot carries, whatever the configuration says.
const MAX_ROOMS: usize = 100;
/// Shortest interval between looks at the lists.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Dashboard feeds open, per app (keyed by its `Health`, which each feed keeps alive), so
/// that several apps in one process (the tests) do not share the bound.
static FEEDS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

/// Holds one feed slot (and one realtime connection) for as long as the feed lives.
struct Slot(Arc<crate::metrics::Health>);

impl Slot {
    fn key(health: &Arc<crate::metrics::Health>) -> usize {
        Arc::as_ptr(health) as usize
    }

    fn take(state: &AppState) -> Option<Slot> {
        let max = state.config.admin.dashboard_max_connections;
        let mut feeds = FEEDS.lock().unwrap_or_else(|e| e.into_inner());
        let open = feeds.entry(Self::key(&state.health)).or_insert(0);
        if *open >= max {
            return None;
        }
        let ws = &state.health.ws_connections;
        if ws.fetch_add(1, Ordering::Relaxed) >= state.config.ws.max_connections {
            ws.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        *open += 1;
        Some(Slot(state.health.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.ws_connections.fetch_sub(1, Ordering::Relaxed);
        let mut feeds = FEEDS.lock().unwrap_or_else(|e| e.into_inner());
        let key = Self::key(&self.0);
        if let Some(open) = feeds.get_mut(&key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                feeds.remove(&key);
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Why access was refused: status and a message for the operator (never the token).
struct Refusal(StatusCode, &'static str);

/// Checks the admin token when authentication is on.
fn check_access(state: &AppState, req: &HttpRequest) -> Result<(), Refusal> {
    if state.config.auth.mode == AuthMode::Off {
        return Ok(());
    }
    let given = web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
        .filter(|t| !t.is_empty())
        .or_else(|| crate::http::bearer(req));
    check_token(given.as_deref(), state.config.admin.token.expose()).map_err(|r| match r {
        TokenRefusal::NotConfigured => Refusal(
            StatusCode::FORBIDDEN,
            "the dashboard is disabled: set admin.token (MINILVB_ADMIN__TOKEN), \
             or run with auth.mode = \"off\"",
        ),
        TokenRefusal::Missing => Refusal(
            StatusCode::UNAUTHORIZED,
            "the dashboard needs the admin token: /dashboard?token=... or Authorization: Bearer",
        ),
        TokenRefusal::Invalid => Refusal(StatusCode::FORBIDDEN, "the admin token is not valid"),
    })
}

fn refuse_text(r: Refusal) -> HttpResponse {
    let mut b = HttpResponse::build(r.0);
    if r.0 == StatusCode::UNAUTHORIZED {
        b.insert_header((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"minilvb dashboard\"",
        ));
    }
    b.insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; charset=utf-8")
        .body(format!("{}\n", r.1))
}

fn refuse_json(status: StatusCode, code: Code, msg: &str) -> HttpResponse {
    envelope::error_response(status, &ApiError::new(code, msg))
}

/// The Content-Security-Policy of the page: only its own inline script and style (by
/// hash) run, and it may connect only to its own origin.
fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |tag: &str| {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            let start = PAGE.find(&open).map(|i| i + open.len()).unwrap_or(0);
            let end = PAGE[start..]
                .find(&close)
                .map(|i| start + i)
                .unwrap_or(start);
            use base64::Engine;
            let digest = Sha256::digest(&PAGE.as_bytes()[start..end]);
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash("script"),
            hash("style")
        )
    })
}

/// `GET /dashboard`.
pub async fn page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = check_access(&state, &req) {
        return refuse_text(r);
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_SECURITY_POLICY, csp()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // The token is in the address: never send it anywhere else.
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .content_type("text/html; charset=utf-8")
        .body(PAGE)
}

/// `GET /ws/dashboard`.
pub async fn feed(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    if let Err(r) = check_access(&state, &req) {
        return Ok(refuse_json(r.0, Code::Verification, r.1));
    }
    let Some(slot) = Slot::take(&state) else {
        return Ok(refuse_json(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::TooManyRequests,
            "too many dashboard connections",
        ));
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(1024);
    actix_web::rt::spawn(run(state, session, stream, slot));
    Ok(response)
}

async fn run(
    state: web::Data<AppState>,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    _slot: Slot,
) {
    let ws = state.config.ws.clone();
    let admin = state.config.admin.clone();
    let timeout = Duration::from_secs(ws.timeout_secs.max(1));
    let limit = admin.dashboard_rooms.clamp(1, MAX_ROOMS);
    let mut tick =
        tokio::time::interval(Duration::from_millis(admin.dashboard_interval_ms).max(MIN_INTERVAL));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ping = tokio::time::interval(Duration::from_secs(ws.ping_interval_secs.max(1)));
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut last_sent = String::new();
    let mut errors = 0u32;
    let end = loop {
        tokio::select! {
            _ = tick.tick() => {
                let (key, frame) = snapshot(&state, limit).await;
                if key == last_sent {
                    continue;
                }
                match tokio::time::timeout(timeout, session.text(frame)).await {
                    Ok(Ok(())) => last_sent = key,
                    Ok(Err(_)) => break None,
                    Err(_) => break Some(reason(CloseCode::Policy, "too slow: could not deliver")),
                }
            }
            msg = stream.next() => {
                last_heard = Instant::now();
                match msg {
                    None => break None,
                    Some(Ok(Message::Ping(b))) => {
                        if tokio::time::timeout(timeout, session.pong(&b)).await.map_or(true, |r| r.is_err()) {
                            break None;
                        }
                    }
                    Some(Ok(Message::Close(r))) => break r,
                    Some(Ok(Message::Pong(_) | Message::Nop)) => {}
                    // The feed is read-only: anything else is tolerated a few times.
                    Some(Ok(_)) => {
                        errors += 1;
                        if errors > ws.max_errors {
                            break Some(reason(CloseCode::Policy, "the dashboard feed is read-only"));
                        }
                    }
                    Some(Err(e)) => break Some(reason(CloseCode::Protocol, &format!("protocol error: {e}"))),
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > timeout {
                    break Some(reason(CloseCode::Policy, "heartbeat timeout"));
                }
                if tokio::time::timeout(timeout, session.ping(b"")).await.map_or(true, |r| r.is_err()) {
                    break None;
                }
            }
        }
    };
    if let Some(r) = end {
        let _ = tokio::time::timeout(Duration::from_secs(1), session.close(Some(r))).await;
    }
}

/// The first `limit` live rooms and recordings (in a cluster, with the nodes and each
/// room's owner): a key to detect changes (the frame without its time) and the frame.
async fn snapshot(state: &AppState, limit: usize) -> (String, String) {
    let (live, vod) = {
        let list = state.list.read().unwrap_or_else(|e| e.into_inner());
        let owned = |p: crate::supervisor::ListPage| -> (usize, Vec<String>) {
            (p.total, p.items.iter().map(|s| s.to_string()).collect())
        };
        (
            owned(list.page(ListFlag::Live, 0, limit)),
            owned(list.page(ListFlag::Recordings, 0, limit)),
        )
    };
    let parse = |items: &[String]| -> Vec<PusherInfo> {
        items
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect()
    };
    let live_rooms = parse(&live.1);
    let mut rooms: Vec<Value> = live_rooms
        .iter()
        .map(|p| {
            json!({
                "userid": p.userid, "groupid": p.groupid, "title": p.title,
                "nickname": p.userinfo.nickname, "viewers": p.viewercount,
                "likes": p.likecount, "since": p.timestamp, "online": p.status == "1",
            })
        })
        .collect();
    let recordings: Vec<Value> = parse(&vod.1)
        .into_iter()
        .map(|p| {
            json!({
                "userid": p.userid, "fileid": p.fileid, "title": p.title,
                "nickname": p.userinfo.nickname, "views": p.viewercount,
                "likes": p.likecount, "time": p.timestamp,
            })
        })
        .collect();
    let cluster = match state.rooms.cluster() {
        None => Value::Null,
        Some(c) => {
            let keys: Vec<crate::model::RoomKey> = live_rooms
                .iter()
                .map(|p| crate::model::RoomKey::Live(p.userid.clone()))
                .collect();
            match c.view(&keys).await {
                Ok(view) => {
                    for (room, owner) in rooms.iter_mut().zip(&view.owners) {
                        room["node"] = json!(owner);
                    }
                    let nodes: Vec<Value> = view
                        .nodes
                        .iter()
                        .map(|n| json!({"id": n.id, "url": n.url, "rooms": n.rooms}))
                        .collect();
                    json!({"me": view.me, "nodes": nodes})
                }
                // Shown as such; the lists above are this node's own copy either way.
                Err(_) => json!({"me": c.node_id, "nodes": null}),
            }
        }
    };
    let mut data = json!({
        "event": "snapshot",
        "limit": limit,
        "live": {"total": live.0, "rooms": rooms},
        "recordings": {"total": vod.0, "items": recordings},
    });
    if !cluster.is_null() {
        data["cluster"] = cluster;
    }
    let key = data.to_string();
    data["at"] = json!(crate::model::now_unix());
    (key, data.to_string())
}

fn reason(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_string()),
    }
}

/// An operator action or read: the admin token in every auth mode (with `auth.mode =
/// "off"` the page itself is open, its buttons are not).
fn check_operator(state: &AppState, req: &HttpRequest) -> Result<(), Refusal> {
    let given = crate::http::bearer(req);
    check_token(given.as_deref(), state.config.admin.token.expose()).map_err(|r| match r {
        TokenRefusal::NotConfigured => Refusal(
            StatusCode::FORBIDDEN,
            "operator actions are disabled: set admin.token (MINILVB_ADMIN__TOKEN)",
        ),
        TokenRefusal::Missing => Refusal(
            StatusCode::UNAUTHORIZED,
            "operator actions need the admin token (Authorization: Bearer)",
        ),
        TokenRefusal::Invalid => Refusal(StatusCode::FORBIDDEN, "the admin token is not valid"),
    })
}

/// Reports and bans shown at most.
const MODERATION_ROWS: usize = 100;

/// `GET /dashboard/moderation`: the most reported VJs and the banned ones.
pub async fn moderation(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = check_operator(&state, &req) {
        return refuse_json(r.0, Code::Verification, r.1);
    }
    let read = async {
        let reports = state.content.reported(MODERATION_ROWS).await?;
        let bans = state.content.bans(MODERATION_ROWS).await?;
        Ok::<_, crate::store::StoreError>((reports, bans))
    };
    match read.await {
        Ok((reports, bans)) => {
            let reports: Vec<Value> = reports
                .iter()
                .map(|r| {
                    json!({"userid": r.vj, "reporters": r.reporters, "reports": r.times,
                        "last": r.last_at})
                })
                .collect();
            let bans: Vec<Value> = bans
                .iter()
                .map(|(u, at)| json!({"userid": u, "since": at}))
                .collect();
            envelope::ok_raw(&json!({"reports": reports, "bans": bans}).to_string())
        }
        Err(e) => {
            let e = ApiError::from(e);
            crate::http::report(&state, "dashboard moderation", &e);
            envelope::error(&e)
        }
    }
}

#[derive(serde::Deserialize)]
struct OperatorAction {
    userid: String,
    /// For `ban`: true bans, false lifts the ban.
    #[serde(default)]
    forbid: Option<bool>,
}

/// `POST /dashboard/{stop|ban}` with `{"userid": .., "forbid": bool}`: the operator's end
/// of a broadcast and ban, the same as StopLVB and ForbidLive.
pub async fn act(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(r) = check_operator(&state, &req) {
        return refuse_json(r.0, Code::Verification, r.1);
    }
    let bad = |m: &str| envelope::error_response(StatusCode::BAD_REQUEST, &ApiError::param(m));
    let Ok(a) = serde_json::from_slice::<OperatorAction>(&body) else {
        return bad("body must be a JSON object with a string 'userid'");
    };
    if a.userid.is_empty() || a.userid.len() > state.config.limits.max_userid_len {
        return bad("field 'userid' must be 1 to limits.max_userid_len bytes");
    }
    use crate::actions::moderation;
    let (name, result) = match (path.as_str(), a.forbid) {
        ("stop", _) => ("StopLVB", moderation::stop_vj(&state, &a.userid).await),
        ("ban", Some(forbid)) => (
            "ForbidLive",
            moderation::set_ban(&state, &a.userid, forbid).await,
        ),
        ("ban", None) => return bad("missing required field 'forbid' (true or false)"),
        _ => return bad("unknown operator action: use stop or ban"),
    };
    match result.and_then(|o| {
        serde_json::to_string(&o).map_err(|e| ApiError::internal("encoding failed", &e))
    }) {
        Ok(data) => envelope::ok_raw(&data),
        Err(e) => {
            crate::http::report(&state, name, &e);
            envelope::error(&e)
        }
    }
}

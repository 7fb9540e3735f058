//! Media-server callbacks: Tencent Cloud LVB events (signed), nginx-rtmp and SRS hooks
//! (from trusted addresses; a publish must carry a valid push signature).

use crate::http::body;
use crate::media::recorded::{self, RecordedFile};
use crate::media::{self, Outcome};
use crate::model::now_unix;
use crate::protocol::{ApiError, Code};
use crate::room::RoomError;
use crate::sign;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Callback answers carry the protocol's codes too.
const INVALID: i64 = Code::InvalidParam as i64;
const VERIFICATION: i64 = Code::Verification as i64;

const MAX_STREAM: usize = 255;
const MAX_URL: usize = 1024;
const MAX_ID: usize = 128;

fn reply(status: StatusCode, code: i64, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(json!({"code": code, "message": message}).to_string())
}

fn ok() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"code":0}"#)
}

fn bad(msg: impl Into<String>) -> HttpResponse {
    reply(StatusCode::BAD_REQUEST, INVALID, &msg.into())
}

fn api_error(state: &AppState, e: RoomError) -> HttpResponse {
    let e = ApiError::from(e);
    super::report(state, "media event", &e);
    // A storage failure must make the media server retry later: answer 5xx.
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        e.code.value() as i64,
        &e.msg,
    )
}

fn int_field(o: &Map<String, Value>, name: &str) -> Option<i64> {
    match o.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_field<'a>(
    o: &'a Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<&'a str>, String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.as_str())),
        Some(Value::String(_)) => Err(format!("field '{name}' is longer than {max} bytes")),
        Some(_) => Err(format!("field '{name}' must be a string")),
    }
}

/// The first of `names` that is a non-empty string (a field of the wrong type or too long
/// is an error, not skipped); "missing" names the first.
fn required<'a>(o: &'a Map<String, Value>, names: &[&str], max: usize) -> Result<&'a str, String> {
    for name in names {
        if let Some(s) = str_field(o, name, max)?.filter(|s| !s.is_empty()) {
            return Ok(s);
        }
    }
    Err(format!("missing '{}'", names[0]))
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err("body must be a JSON object".into()),
        Err(_) => Err("body is not valid JSON".into()),
    }
}

/// Tencent Cloud LVB event notification.
async fn tencent_inner(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let o = match parse_object(&body) {
        Ok(o) => o,
        Err(m) => return bad(m),
    };
    let forbidden = |m: &str| reply(StatusCode::FORBIDDEN, VERIFICATION, m);
    let api_key = &state.config.live.api_key;
    if api_key.is_empty() {
        return forbidden("callbacks are not accepted: live.api_key is not configured");
    }
    let Some(t) = int_field(&o, "t").filter(|t| *t >= 0) else {
        return forbidden("missing or invalid 't'");
    };
    let sign = match str_field(&o, "sign", 64) {
        Ok(Some(s)) => s,
        _ => return forbidden("missing or invalid 'sign'"),
    };
    if let Err(e) =
        sign::callback::verify(api_key.expose(), t as u64, sign, now_unix().max(0) as u64)
    {
        tracing::warn!(reason = %e, "tencent callback refused");
        return forbidden(&format!("verification failed: {e}"));
    }
    let Some(event) = int_field(&o, "event_type") else {
        return bad("missing or invalid 'event_type'");
    };
    let stream = match required(&o, &["stream_id", "channel_id"], MAX_STREAM) {
        Ok(s) => s.to_string(),
        Err(m) => return bad(m),
    };
    let result = match event {
        1 | 0 => {
            media::stream_status(&state, &stream, event == 1, int_field(&o, "event_time")).await
        }
        100 => {
            let (fileid, url) = match (
                required(&o, &["file_id"], MAX_ID),
                required(&o, &["video_url"], MAX_URL),
            ) {
                (Ok(f), Ok(u)) => (f, u),
                (Err(m), _) | (_, Err(m)) => return bad(m),
            };
            let hls =
                o.get("file_format").and_then(Value::as_str) == Some("hls") || media::is_hls(url);
            let end = int_field(&o, "end_time").unwrap_or(0);
            let start = int_field(&o, "start_time").unwrap_or(0);
            let file = media::RecordedFile {
                fileid,
                url,
                hls,
                start,
                end,
            };
            media::recording(&state, &stream, file).await
        }
        200 => {
            let url = match (
                str_field(&o, "pic_full_url", MAX_URL),
                str_field(&o, "pic_url", MAX_URL),
            ) {
                (Ok(Some(u)), _) if !u.is_empty() => u,
                (_, Ok(Some(u))) if !u.is_empty() => u,
                _ => return bad("missing 'pic_url'"),
            };
            media::screenshot(&state, &stream, url).await
        }
        other => {
            tracing::info!(
                event_type = other,
                stream,
                "unknown tencent event acknowledged"
            );
            Ok(Outcome::Ignored)
        }
    };
    match result {
        Ok(outcome) => {
            if outcome == Outcome::UnknownStream {
                tracing::info!(stream, event, "event for an unknown stream acknowledged");
            }
            ok()
        }
        Err(e) => api_error(&state, e),
    }
}

/// The recorded file a self-hosted hook reports in `field`, or why it is refused (logged:
/// the media server only logs the answer, so the operator learns of it here).
fn recorded_file(stream: &str, field: &str, path: &str) -> Result<RecordedFile, String> {
    RecordedFile::parse(path).map_err(|why| {
        tracing::warn!(stream, path = ?path, reason = %why, "recorded file refused");
        format!("field '{field}' {why}")
    })
}

/// Behind a trusted reverse proxy this is the client the proxy names, not the proxy.
fn trusted(state: &AppState, req: &HttpRequest) -> bool {
    crate::http::client_ip(state, req).is_some_and(|ip| state.media_hooks.contains(ip))
}

/// nginx-rtmp `on_publish`, `on_publish_done`, `on_record_done`, `on_update` (form POST).
/// A 2xx admits a publish; anything else makes nginx drop the stream.
async fn nginx_rtmp_inner(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if !trusted(&state, &req) {
        return reply(
            StatusCode::FORBIDDEN,
            VERIFICATION,
            "this address may not call media-server hooks",
        );
    }
    let Ok(form) = serde_urlencoded::from_bytes::<HashMap<String, String>>(&body) else {
        return bad("body is not a form");
    };
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let stream = get("name");
    if stream.is_empty() || stream.len() > MAX_STREAM {
        return bad("missing or oversized 'name'");
    }
    let result = match get("call") {
        "publish" => {
            if let Err(why) =
                media::verify_push(&state, stream, get("txSecret"), get("txTime")).await
            {
                tracing::warn!(stream, reason = %why, "publish refused");
                return reply(StatusCode::FORBIDDEN, VERIFICATION, &why);
            }
            media::stream_status(&state, stream, true, None).await
        }
        "publish_done" => media::stream_status(&state, stream, false, None).await,
        // nginx-rtmp sends `update_publish` for on_update; a failed lookup must not make
        // nginx drop a healthy stream, so a sign of life never answers an error.
        "update" | "update_publish" => {
            if let Err(e) = media::sign_of_life(&state, stream).await {
                super::report(&state, "sign of life", &ApiError::from(e));
            }
            Ok(Outcome::Applied)
        }
        "record_done" => {
            let file = match recorded_file(stream, "path", get("path")) {
                Ok(f) => f,
                Err(m) => return bad(m),
            };
            let url = file.url(&state.config.media.recordings_base_url);
            media::recording(
                &state,
                stream,
                media::RecordedFile::ended_now(file.id(), &url, file.is_hls()),
            )
            .await
        }
        _ => Ok(Outcome::Ignored),
    };
    match result {
        Ok(_) => HttpResponse::Ok().finish(),
        Err(e) => api_error(&state, e),
    }
}

/// SRS HTTP hooks (JSON); `{"code":0}` admits, anything else rejects.
async fn srs_inner(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if !trusted(&state, &req) {
        return reply(
            StatusCode::FORBIDDEN,
            VERIFICATION,
            "this address may not call media-server hooks",
        );
    }
    let o = match parse_object(&body) {
        Ok(o) => o,
        Err(m) => return bad(m),
    };
    let stream = match required(&o, &["stream"], MAX_STREAM) {
        Ok(s) => s.to_string(),
        Err(m) => return bad(m),
    };
    let action = o.get("action").and_then(Value::as_str).unwrap_or("");
    let result = match action {
        "on_publish" => {
            let param = str_field(&o, "param", MAX_URL).ok().flatten().unwrap_or("");
            let q: HashMap<String, String> =
                serde_urlencoded::from_str(param.trim_start_matches('?')).unwrap_or_default();
            let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
            if let Err(why) =
                media::verify_push(&state, &stream, get("txSecret"), get("txTime")).await
            {
                tracing::warn!(stream, reason = %why, "publish refused");
                return reply(StatusCode::OK, VERIFICATION, &why);
            }
            media::stream_status(&state, &stream, true, None).await
        }
        "on_unpublish" => media::stream_status(&state, &stream, false, None).await,
        "on_hls" => {
            if let Err(e) = media::sign_of_life(&state, &stream).await {
                super::report(&state, "sign of life", &ApiError::from(e));
            }
            Ok(Outcome::Applied)
        }
        "on_dvr" => {
            let path = match str_field(&o, "file", recorded::MAX_PATH) {
                Ok(p) => p.unwrap_or(""),
                Err(m) => return bad(m),
            };
            let file = match recorded_file(&stream, "file", path) {
                Ok(f) => f,
                Err(m) => return bad(m),
            };
            let url = file.url(&state.config.media.recordings_base_url);
            media::recording(
                &state,
                &stream,
                media::RecordedFile::ended_now(file.id(), &url, file.is_hls()),
            )
            .await
        }
        _ => Ok(Outcome::Ignored),
    };
    match result {
        Ok(_) => ok(),
        Err(e) => api_error(&state, e),
    }
}

/// Counts each callback's outcome by source.
fn counted(state: &AppState, source: &'static str, resp: HttpResponse) -> HttpResponse {
    let outcome = match resp.status().as_u16() {
        200..=299 => "ok",
        400 | 408 | 413 => "bad_request",
        403 => "refused",
        _ => "error",
    };
    state.metrics.callback(source, outcome);
    resp
}

/// Reads the body (within the request deadline and `limits.max_body_bytes`), runs the hook
/// on it, and counts the outcome under `source`.
async fn hook<F, Fut>(
    state: web::Data<AppState>,
    req: &HttpRequest,
    payload: web::Payload,
    source: &'static str,
    run: F,
) -> HttpResponse
where
    F: FnOnce(web::Bytes) -> Fut,
    Fut: std::future::Future<Output = HttpResponse>,
{
    let resp = match body::read(req, payload, state.config.limits.max_body_bytes).await {
        Ok(body) => run(body).await,
        Err(e) => reply(e.status(), INVALID, &e.message()),
    };
    counted(&state, source, resp)
}

pub async fn tencent(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let s = state.clone();
    hook(state, &req, payload, "tencent", |b| tencent_inner(s, b)).await
}

pub async fn nginx_rtmp(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (s, r) = (state.clone(), req.clone());
    hook(state, &req, payload, "nginx-rtmp", |b| {
        nginx_rtmp_inner(s, r, b)
    })
    .await
}

pub async fn srs(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (s, r) = (state.clone(), req.clone());
    hook(state, &req, payload, "srs", |b| srs_inner(s, r, b)).await
}

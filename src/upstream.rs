//! Calls this server makes to media services: Tencent's live API (`common_access`:
//! stream mixing, a channel's status) and nginx-rtmp's control module (cutting a
//! publisher). Each call is bounded in time and in the size of its answer, and no key
//! appears in an error.

use crate::config::{LiveConfig, MediaConfig};
use crate::model::now_unix;
use md5::{Digest, Md5};
use std::time::Duration;

/// Answers larger than this are not read.
const MAX_ANSWER: usize = 64 * 1024;
/// Calls in flight at once, process-wide, for each kind: clients cannot make this server
/// flood a media service (with its key) or park unbounded waits on it, and the calls users
/// cause (mixing) never take the operators' (cutting a stream) slots.
const MAX_IN_FLIGHT: usize = 16;

static USER_CALLS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_IN_FLIGHT);
static OPERATOR_CALLS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_IN_FLIGHT);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0} is not configured on this server")]
    NotConfigured(&'static str),
    #[error("{0} did not answer in time")]
    Timeout(&'static str),
    #[error("{0} could not be reached")]
    Unreachable(&'static str),
    #[error("{service} answered HTTP {status}")]
    Status { service: &'static str, status: u16 },
    #[error("{service} refused: {why}")]
    Refused { service: &'static str, why: String },
    #[error("too many calls to media services are in flight ({MAX_IN_FLIGHT})")]
    Busy,
}

thread_local! {
    // Calls are rare (moderation, link-mic mixing): a small pool per worker thread, as the
    // connections belong to the thread's event loop.
    static CLIENT: reqwest::Client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(4)
        .connect_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client without TLS always builds");
}

const TENCENT: &str = "the Tencent live API";
const NGINX: &str = "the nginx-rtmp control module";

async fn send(
    service: &'static str,
    slots: &'static tokio::sync::Semaphore,
    req: reqwest::RequestBuilder,
    limit: Duration,
) -> Result<String, UpstreamError> {
    let _slot = slots.try_acquire().map_err(|_| UpstreamError::Busy)?;
    let call = async {
        let mut resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                UpstreamError::Timeout(service)
            } else {
                UpstreamError::Unreachable(service)
            }
        })?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|_| UpstreamError::Unreachable(service))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(UpstreamError::Refused {
                    service,
                    why: format!("answer larger than {MAX_ANSWER} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            return Err(UpstreamError::Status { service, status });
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(limit, call)
        .await
        .map_err(|_| UpstreamError::Timeout(service))?
}

/// `{api_url}?appid=..&interface=..&t=..&sign=..`: `t` is when the call expires (now + 60 s)
/// and `sign = md5(api_key + t)`, as Tencent documents it.
fn tencent_url(
    cfg: &LiveConfig,
    interface: &str,
    params: &[(&str, &str)],
) -> Result<String, UpstreamError> {
    if cfg.appid.is_empty() || cfg.api_key.is_empty() || cfg.api_url.is_empty() {
        return Err(UpstreamError::NotConfigured(
            "the Tencent live API (live.appid, live.api_key, live.api_url)",
        ));
    }
    let t = (now_unix() + 60).to_string();
    let mut h = Md5::new();
    h.update(cfg.api_key.expose().as_bytes());
    h.update(t.as_bytes());
    let sign = hex::encode(h.finalize());
    let mut query = vec![
        ("appid", cfg.appid.as_str()),
        ("interface", interface),
        ("t", t.as_str()),
        ("sign", sign.as_str()),
    ];
    query.extend_from_slice(params);
    let q = serde_urlencoded::to_string(&query).unwrap_or_default();
    Ok(format!("{}?{q}", cfg.api_url))
}

fn limit(cfg: &LiveConfig) -> Duration {
    Duration::from_millis(cfg.api_timeout_ms)
}

/// Starts or changes a stream mix (`Mix_StreamV2`) with the app's own parameters (a JSON
/// object). Returns Tencent's answer, a JSON object carrying `code`.
pub async fn mix(cfg: &LiveConfig, params: String) -> Result<String, UpstreamError> {
    let url = tencent_url(cfg, "Mix_StreamV2", &[])?;
    let req = CLIENT.with(|c| {
        c.post(url)
            .header("content-type", "application/json")
            .body(params)
    });
    let answer = send(TENCENT, &USER_CALLS, req, limit(cfg)).await?;
    match serde_json::from_str::<serde_json::Value>(&answer) {
        Ok(v) if v.is_object() => Ok(v.to_string()),
        _ => Err(UpstreamError::Refused {
            service: TENCENT,
            why: "the answer is not a JSON object".into(),
        }),
    }
}

/// Sets a stream's status at Tencent (`Live_Channel_SetStatus`): 0 disables it (cut, and
/// refused until enabled again), 1 enables it, 2 cuts it once.
pub async fn set_channel(cfg: &LiveConfig, stream: &str, status: u8) -> Result<(), UpstreamError> {
    let status = status.to_string();
    let url = tencent_url(
        cfg,
        "Live_Channel_SetStatus",
        &[("Param.s.channel_id", stream), ("Param.n.status", &status)],
    )?;
    let req = CLIENT.with(|c| c.get(url));
    let answer = send(TENCENT, &OPERATOR_CALLS, req, limit(cfg)).await?;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    match v.get("ret").and_then(serde_json::Value::as_i64) {
        Some(0) => Ok(()),
        _ => Err(UpstreamError::Refused {
            service: TENCENT,
            why: v
                .get("message")
                .or_else(|| v.get("errmsg"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no 'ret': 0 in the answer")
                .chars()
                .take(200)
                .collect(),
        }),
    }
}

/// Disconnects a stream's publisher at nginx-rtmp (`drop/publisher`): how many clients it
/// dropped (0: the stream was not being published). `Ok(None)` when no control URL is
/// configured.
pub async fn nginx_drop(
    media: &MediaConfig,
    app: &str,
    stream: &str,
) -> Result<Option<u64>, UpstreamError> {
    if media.nginx_control_url.is_empty() {
        return Ok(None);
    }
    let q = serde_urlencoded::to_string([("app", app), ("name", stream)]).unwrap_or_default();
    let url = format!(
        "{}/drop/publisher?{q}",
        media.nginx_control_url.trim_end_matches('/')
    );
    let req = CLIENT.with(|c| c.get(url));
    match send(NGINX, &OPERATOR_CALLS, req, Duration::from_secs(5)).await {
        Ok(body) => Ok(Some(body.trim().parse().unwrap_or(0))),
        // nginx-rtmp answers for a stream nobody publishes with a 4xx: nothing to drop.
        Err(UpstreamError::Status { status, .. }) if (400..500).contains(&status) => Ok(Some(0)),
        Err(e) => Err(e),
    }
}

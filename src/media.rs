//! What media-server events do to rooms, whichever server (Tencent, nginx-rtmp, SRS) sent
//! them. Every event is idempotent: a retried delivery changes nothing more.

pub mod recorded;

use crate::app::AppState;
use crate::model::{now_unix, RoomInfo, RoomKey};
use crate::protocol::ApiError;
use crate::room::{GetState, MediaStatus, Room, SignOfLife};
use crate::sign::{self, SignError};
use crate::store::NewRecording;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A late or repeated event that changes nothing.
    Ignored,
    UnknownStream,
}

/// Sends to the live room that owns `stream`; `None` when no room owns it.
async fn ask_stream<M>(
    state: &AppState,
    stream: &str,
    msg: M,
) -> Result<Option<(String, M::Result)>, ApiError>
where
    M: actix::Message + Send + Clone + 'static,
    M::Result: Send,
    Room: actix::Handler<M>,
{
    let Some(vj) = state.store.room_by_stream(stream).await? else {
        return Ok(None);
    };
    Ok(state
        .registry
        .ask(&RoomKey::Live(vj.clone()), msg)
        .await?
        .map(|r| (vj, r)))
}

/// Stream started (online) or ended (offline) at `event_time`, if the server says when.
pub async fn stream_status(
    state: &AppState,
    stream: &str,
    online: bool,
    event_time: Option<i64>,
) -> Result<Outcome, ApiError> {
    let Some((vj, applied)) = ask_stream(state, stream, MediaStatus { online, event_time }).await?
    else {
        return Ok(Outcome::UnknownStream);
    };
    tracing::info!(
        vj,
        stream,
        online,
        applied,
        "stream status from media server"
    );
    Ok(if applied {
        Outcome::Applied
    } else {
        Outcome::Ignored
    })
}

pub async fn sign_of_life(state: &AppState, stream: &str) -> Result<Outcome, ApiError> {
    Ok(match ask_stream(state, stream, SignOfLife).await? {
        Some(_) => Outcome::Applied,
        None => Outcome::UnknownStream,
    })
}

/// A recorded file of the stream's broadcast is ready at `url`.
pub async fn recording(
    state: &AppState,
    stream: &str,
    fileid: &str,
    url: &str,
    hls: bool,
    end_time: i64,
) -> Result<Outcome, ApiError> {
    let Some((vj, Some((info, counters)))) = ask_stream(state, stream, GetState).await? else {
        return Ok(Outcome::UnknownStream);
    };
    let rec = NewRecording {
        vj: vj.clone(),
        fileid: fileid.to_string(),
        info: RoomInfo {
            groupid: String::new(),
            title: info.title,
            userinfo: info.userinfo,
            stream: stream.to_string(),
            timestamp: if end_time > 0 { end_time } else { now_unix() },
            playurl: if hls { String::new() } else { url.to_string() },
            hls_play_url: if hls { url.to_string() } else { String::new() },
            snapshot_url: info.snapshot_url,
        },
        likes: counters.likes,
        views: counters.views,
    };
    crate::recordings::add(state, rec).await?;
    tracing::info!(vj, stream, fileid, "recording stored");
    Ok(Outcome::Applied)
}

/// The media server took a screenshot of the stream.
pub async fn screenshot(state: &AppState, stream: &str, url: &str) -> Result<Outcome, ApiError> {
    let Some(vj) = state.store.room_by_stream(stream).await? else {
        return Ok(Outcome::UnknownStream);
    };
    let key = RoomKey::Live(vj);
    state.store.set_snapshot_url(&key, url).await?;
    state
        .registry
        .ask(
            &key,
            crate::room::SetSnapshot {
                url: url.to_string(),
            },
        )
        .await?;
    Ok(Outcome::Applied)
}

/// Checks a push URL's hotlink protection for a stream this server knows.
pub async fn verify_push(
    state: &AppState,
    stream: &str,
    tx_secret: &str,
    tx_time: &str,
) -> Result<(), String> {
    let key = &state.config.live.push_key;
    if key.is_empty() {
        return Err("push signing is not configured".into());
    }
    match state.store.room_by_stream(stream).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(format!("unknown stream '{stream}'")),
        Err(e) => return Err(format!("storage unavailable: {}", ApiError::from(e).msg)),
    }
    let now = now_unix().max(0) as u64;
    sign::push::verify(key.expose(), stream, tx_secret, tx_time, now).map_err(|e| match e {
        SignError::Mismatch => "push signature does not match".to_string(),
        SignError::Expired => "push URL has expired".to_string(),
        SignError::Malformed(what) => format!("malformed {what}"),
    })
}

/// Whether a URL names an HLS playlist.
pub fn is_hls(url: &str) -> bool {
    url.split(['?', '#'])
        .next()
        .is_some_and(|p| p.ends_with(".m3u8"))
}

//! What media-server events do to rooms, whichever server (Tencent, nginx-rtmp, SRS) sent
//! them. Every event is idempotent: a retried delivery changes nothing more.

pub mod recorded;

use crate::model::{now_unix, RoomInfo};
use crate::room::RoomError;
use crate::sign::{self, SignError};
use crate::state::AppState;
use crate::store::NewRecording;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A late or repeated event that changes nothing.
    Ignored,
    UnknownStream,
}

/// The VJ whose current broadcast uses `stream`.
async fn owner(state: &AppState, stream: &str) -> Result<Option<String>, RoomError> {
    state.rooms.owner_of_stream(stream).await
}

/// A room that the store names but that is gone by the time it is asked is unknown too.
fn known<T>(r: Result<T, RoomError>) -> Result<Option<T>, RoomError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(RoomError::NoRoom(_) | RoomError::NoBroadcast(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Stream started (online) or ended (offline) at `event_time`, if the server says when.
pub async fn stream_status(
    state: &AppState,
    stream: &str,
    online: bool,
    event_time: Option<i64>,
) -> Result<Outcome, RoomError> {
    let Some(vj) = owner(state, stream).await? else {
        return Ok(Outcome::UnknownStream);
    };
    if online && state.content.block(&vj).await?.is_some() {
        tracing::warn!(
            vj,
            stream,
            "a banned or stopped broadcast's stream started: not listed"
        );
        return Ok(Outcome::Ignored);
    }
    let Some(applied) = known(state.rooms.media_status(&vj, online, event_time).await)? else {
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

pub async fn sign_of_life(state: &AppState, stream: &str) -> Result<Outcome, RoomError> {
    let Some(vj) = owner(state, stream).await? else {
        return Ok(Outcome::UnknownStream);
    };
    Ok(match known(state.rooms.sign_of_life(&vj).await)? {
        Some(()) => Outcome::Applied,
        None => Outcome::UnknownStream,
    })
}

/// A recorded file as the media server describes it.
pub struct RecordedFile<'a> {
    pub fileid: &'a str,
    pub url: &'a str,
    pub hls: bool,
    /// Unix seconds; 0 when the server does not say.
    pub start: i64,
    pub end: i64,
}

impl<'a> RecordedFile<'a> {
    /// A file the self-hosted servers report as it is closed (they give no times).
    pub fn ended_now(fileid: &'a str, url: &'a str, hls: bool) -> Self {
        RecordedFile {
            fileid,
            url,
            hls,
            start: 0,
            end: now_unix(),
        }
    }
}

/// A recorded file of the stream's broadcast is ready at its URL.
pub async fn recording(
    state: &AppState,
    stream: &str,
    file: RecordedFile<'_>,
) -> Result<Outcome, RoomError> {
    let RecordedFile {
        fileid,
        url,
        hls,
        start,
        end: end_time,
    } = file;
    let Some(vj) = owner(state, stream).await? else {
        return Ok(Outcome::UnknownStream);
    };
    let key = crate::model::RoomKey::Live(vj.clone());
    let Some((info, counters)) = known(state.rooms.state(&key).await)? else {
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
        start_time: start,
    };
    let stored = state.rooms.add_recording(rec).await?;
    let entry = stored.key.fileid();
    tracing::info!(vj, stream, fileid, recording = entry, "recording stored");
    Ok(Outcome::Applied)
}

/// The media server took a screenshot of the stream.
pub async fn screenshot(state: &AppState, stream: &str, url: &str) -> Result<Outcome, RoomError> {
    let Some(vj) = owner(state, stream).await? else {
        return Ok(Outcome::UnknownStream);
    };
    known(state.rooms.set_snapshot(&vj, url.to_string()).await)?;
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
    let storage = |e: &dyn std::fmt::Display| {
        // Refused here, so logged and counted here.
        state.metrics.db_error();
        tracing::warn!(stream, error = %e, "push check: storage failed");
        "storage unavailable: storage operation failed, please retry".to_string()
    };
    // A broadcast's stream, or a co-host's (RequestLVBAddrForLinkMic).
    let (vj, is_broadcast) = match state.rooms.owner_of_stream(stream).await {
        Ok(Some(vj)) => (vj, true),
        Ok(None) => match state.content.linkmic_owner(stream).await {
            Ok(Some((userid, _))) => (userid, false),
            Ok(None) => return Err(format!("unknown stream '{stream}'")),
            Err(e) => return Err(storage(&e)),
        },
        Err(e) => return Err(storage(&e)),
    };
    match state.content.block(&vj).await {
        Ok(None) => {}
        Ok(Some(crate::store::Block::Banned)) => {
            return Err(format!("userid '{vj}' is banned from broadcasting"))
        }
        // A co-host stream is its own: only a ban refuses it.
        Ok(Some(crate::store::Block::Stopped)) if !is_broadcast => {}
        Ok(Some(crate::store::Block::Stopped)) => {
            return Err(format!(
                "the broadcast of '{vj}' was ended by an operator: start a new one"
            ))
        }
        Err(e) => return Err(storage(&e)),
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

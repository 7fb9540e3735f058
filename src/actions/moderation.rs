//! Moderation: reports from viewers, and the operators' StopLVB and ForbidLive (the admin
//! token in every auth mode: the unmodified apps never send these). A banned VJ gets no
//! push URL, its publishes are refused by the media-server hooks, and a live stream is
//! cut where the media server allows it (nginx-rtmp's control module, Tencent's channel
//! status).

use super::{json, Caller, EMPTY};
use crate::model::{now_unix, RoomKey};
use crate::protocol::{ApiError, Code};
use crate::room::RoomError;
use crate::sign;
use crate::state::AppState;
use serde::Serialize;

/// What ending or banning a broadcast did.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub result: i32,
    /// Whether the room was online and is now offline.
    pub ended: bool,
    /// The media-server controls that applied the change ("nginx-rtmp", "tencent"); empty
    /// when none is configured or a call failed (logged).
    pub cut: Vec<&'static str>,
}

/// The admin token, in every auth mode.
pub fn check_admin(state: &AppState, action: &str, caller: &Caller) -> Result<(), ApiError> {
    let expected = &state.config.admin.token;
    if expected.is_empty() {
        return Err(ApiError::auth(format!(
            "{action} is disabled on this server: set admin.token (MINILVB_ADMIN__TOKEN)"
        )));
    }
    let Some(given) = &caller.token else {
        return Err(ApiError::auth(format!(
            "{action} needs the admin token (Authorization: Bearer, or the 'token' field)"
        )));
    };
    if sign::token_eq(given.expose(), expected.expose()) {
        Ok(())
    } else {
        Err(ApiError::auth("the admin token is not valid"))
    }
}

/// 498 for a banned VJ.
pub async fn refuse_banned(state: &AppState, userid: &str) -> Result<(), ApiError> {
    if state.content.is_banned(userid).await? {
        return Err(ApiError::auth(format!(
            "userid '{userid}' is banned from broadcasting"
        )));
    }
    Ok(())
}

/// ReportUser: a viewer reports a VJ; kept (repeats counted), bounded per reporter.
pub async fn report(state: &AppState, reporter: &str, vj: &str) -> Result<String, ApiError> {
    if reporter == vj {
        return Err(ApiError::param("a user cannot report themselves"));
    }
    let max = state.config.limits.max_reports_per_user;
    if !state
        .content
        .add_report(reporter, vj, now_unix(), max)
        .await?
    {
        return Err(ApiError::param(format!(
            "userid '{reporter}' has already reported {max} users"
        )));
    }
    tracing::info!(reporter, vj, "user reported");
    Ok(EMPTY.into())
}

/// Takes a VJ's room offline (if online) and cuts the stream: at Tencent, `tencent_status`
/// 2 drops it, 0 also disables it until enabled again.
async fn end(state: &AppState, userid: &str, tencent_status: u8) -> Result<Outcome, ApiError> {
    let key = RoomKey::Live(userid.to_string());
    let ended = match state.rooms.state(&key).await {
        Ok((_, counters)) if counters.online => {
            state.rooms.set_status(userid, false).await?;
            true
        }
        Ok(_) | Err(RoomError::NoRoom(_) | RoomError::NoBroadcast(_)) => false,
        Err(e) => return Err(e.into()),
    };
    let live = &state.config.live;
    let stream = sign::push::stream_name(&live.bizid, userid);
    let mut cut = Vec::new();
    match crate::upstream::nginx_drop(&state.config.media, &live.app_name, &stream).await {
        Ok(true) => cut.push("nginx-rtmp"),
        Ok(false) => {}
        Err(e) => tracing::warn!(userid, stream, error = %e, "cutting the stream failed"),
    }
    if tencent(state) {
        match crate::upstream::set_channel(live, &stream, tencent_status).await {
            Ok(()) => cut.push("tencent"),
            Err(e) => tracing::warn!(userid, stream, error = %e, "cutting the stream failed"),
        }
    }
    Ok(Outcome {
        result: 0,
        ended,
        cut,
    })
}

/// Whether Tencent's live API is configured (an appid and an API key).
fn tencent(state: &AppState) -> bool {
    let l = &state.config.live;
    !l.appid.is_empty() && !l.api_key.is_empty() && !l.api_url.is_empty()
}

/// StopLVB: ends a VJ's broadcast now.
pub async fn stop_vj(state: &AppState, userid: &str) -> Result<Outcome, ApiError> {
    let o = end(state, userid, 2).await?;
    tracing::info!(userid, ended = o.ended, cut = ?o.cut, "broadcast stopped by an operator");
    Ok(o)
}

pub async fn stop(state: &AppState, userid: &str) -> Result<String, ApiError> {
    json(&stop_vj(state, userid).await?)
}

/// ForbidLive: bans (and cuts) or unbans a VJ.
pub async fn set_ban(state: &AppState, userid: &str, forbid: bool) -> Result<Outcome, ApiError> {
    state.content.set_banned(userid, forbid, now_unix()).await?;
    let o = if forbid {
        end(state, userid, 0).await?
    } else {
        let mut cut = Vec::new();
        if tencent(state) {
            let live = &state.config.live;
            let stream = sign::push::stream_name(&live.bizid, userid);
            if let Err(e) = crate::upstream::set_channel(live, &stream, 1).await {
                // The ban is lifted here; Tencent still refuses the stream until this works.
                return Err(ApiError::new(
                    Code::Storage,
                    format!("the ban is lifted, but re-enabling the stream failed: {e}; retry"),
                ));
            }
            cut.push("tencent");
        }
        Outcome {
            result: 0,
            ended: false,
            cut,
        }
    };
    tracing::info!(userid, forbid, "broadcast ban changed by an operator");
    Ok(o)
}

pub async fn forbid(state: &AppState, userid: &str, forbid: bool) -> Result<String, ApiError> {
    json(&set_ban(state, userid, forbid).await?)
}

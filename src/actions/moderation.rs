//! Moderation: reports from viewers, and the operators' StopLVB and ForbidLive (the admin
//! token in every auth mode: the unmodified apps never send these). A banned VJ gets no
//! push URL, its publishes are refused by the media-server hooks, and a live stream is
//! cut where the media server allows it (nginx-rtmp's control module, Tencent's channel
//! status).

use super::{json, Caller, EMPTY};
use crate::model::{now_unix, RoomKey};
use crate::protocol::ApiError;
use crate::room::RoomError;
use crate::sign::{self, TokenRefusal};
use crate::state::AppState;
use crate::store::Block;

pub use crate::protocol::types::ModerationOutcome as Outcome;

impl Outcome {
    fn new(ended: bool) -> Outcome {
        Outcome {
            result: 0,
            ended,
            cut: Vec::new(),
            failed: Vec::new(),
        }
    }
}

/// The admin token, in every auth mode.
pub fn check_admin(state: &AppState, action: &str, caller: &Caller) -> Result<(), ApiError> {
    let given = caller.token.as_ref().map(|t| t.expose());
    sign::check_token(given, state.config.admin.token.expose()).map_err(|r| match r {
        TokenRefusal::NotConfigured => ApiError::auth(format!(
            "{action} is disabled on this server: set admin.token (MINILVB_ADMIN__TOKEN)"
        )),
        TokenRefusal::Missing => ApiError::auth(format!(
            "{action} needs the admin token (Authorization: Bearer, or the 'token' field)"
        )),
        TokenRefusal::Invalid => ApiError::auth("the admin token is not valid"),
    })
}

fn banned(userid: &str) -> ApiError {
    ApiError::auth(format!("userid '{userid}' is banned from broadcasting"))
}

/// 498 for a banned user (a co-host stream; a play URL of a banned VJ's stream).
pub async fn refuse_banned(state: &AppState, userid: &str) -> Result<(), ApiError> {
    match state.content.block(userid).await? {
        Some(Block::Banned) => Err(banned(userid)),
        _ => Ok(()),
    }
}

/// Before a new broadcast (RequestLVBAddr): 498 for a banned VJ. A broadcast an operator
/// stopped is over: the new one clears the mark.
pub async fn admit_new_broadcast(state: &AppState, userid: &str) -> Result<(), ApiError> {
    match state.content.block(userid).await? {
        Some(Block::Banned) => Err(banned(userid)),
        Some(Block::Stopped) => {
            state.content.set_stopped(userid, false, now_unix()).await?;
            Ok(())
        }
        None => Ok(()),
    }
}

/// Before the current broadcast goes online (ChangeStatus online): 498 for a banned VJ or
/// a broadcast an operator stopped.
pub async fn refuse_blocked(state: &AppState, userid: &str) -> Result<(), ApiError> {
    match state.content.block(userid).await? {
        Some(Block::Banned) => Err(banned(userid)),
        Some(Block::Stopped) => Err(ApiError::auth(format!(
            "the broadcast of '{userid}' was ended by an operator: start a new one (RequestLVBAddr)"
        ))),
        None => Ok(()),
    }
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

/// Whether Tencent's live API is configured (an appid and an API key).
fn tencent(state: &AppState) -> bool {
    let l = &state.config.live;
    !l.appid.is_empty() && !l.api_key.is_empty() && !l.api_url.is_empty()
}

/// Cuts one stream where the media servers allow; at Tencent `tencent_status` 2 drops it,
/// 0 also disables it until enabled again (1).
async fn cut(state: &AppState, userid: &str, stream: &str, tencent_status: u8, o: &mut Outcome) {
    let live = &state.config.live;
    match crate::upstream::nginx_drop(&state.config.media, &live.app_name, stream).await {
        Ok(Some(n)) if n > 0 => o.cut.push("nginx-rtmp"),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(userid, stream, error = %e, "cutting the stream failed");
            o.failed.push("nginx-rtmp");
        }
    }
    set_tencent_status(state, userid, stream, tencent_status, o).await;
}

/// Sets a stream's status at Tencent, when its API is configured: 0 disables, 1 enables,
/// 2 drops. A failure is logged and listed; the change here holds regardless.
async fn set_tencent_status(
    state: &AppState,
    userid: &str,
    stream: &str,
    status: u8,
    o: &mut Outcome,
) {
    if !tencent(state) {
        return;
    }
    match crate::upstream::set_channel(&state.config.live, stream, status).await {
        Ok(()) => o.cut.push("tencent"),
        Err(e) => {
            tracing::warn!(userid, stream, status, error = %e, "setting the stream's status failed");
            o.failed.push("tencent");
        }
    }
}

/// Ends a VJ's current broadcast: marked stopped (its push URLs are refused and it cannot
/// go online again until a new RequestLVBAddr), taken offline, and its stream — the one
/// the room holds, not one derived from the userid — cut.
async fn end(state: &AppState, userid: &str, tencent_status: u8) -> Result<Outcome, ApiError> {
    state.content.set_stopped(userid, true, now_unix()).await?;
    let key = RoomKey::Live(userid.to_string());
    let (ended, stream) = match state.rooms.state(&key).await {
        Ok((info, counters)) => {
            if counters.online {
                state.rooms.set_status(userid, false).await?;
            }
            (counters.online, Some(info.stream))
        }
        Err(RoomError::NoRoom(_) | RoomError::NoBroadcast(_)) => (false, None),
        Err(e) => return Err(e.into()),
    };
    let mut o = Outcome::new(ended);
    if let Some(stream) = stream.filter(|s| !s.is_empty()) {
        cut(state, userid, &stream, tencent_status, &mut o).await;
    }
    Ok(o)
}

/// StopLVB: ends a VJ's broadcast now.
pub async fn stop_vj(state: &AppState, userid: &str) -> Result<Outcome, ApiError> {
    let o = end(state, userid, 2).await?;
    tracing::info!(userid, ended = o.ended, cut = ?o.cut, failed = ?o.failed, "broadcast stopped by an operator");
    Ok(o)
}

pub async fn stop(state: &AppState, userid: &str) -> Result<String, ApiError> {
    json(&stop_vj(state, userid).await?)
}

/// ForbidLive: bans (and cuts, co-host stream too) or unbans a VJ. A lifted ban leaves the
/// stopped broadcast stopped: the VJ starts a new one.
pub async fn set_ban(state: &AppState, userid: &str, forbid: bool) -> Result<Outcome, ApiError> {
    state.content.set_banned(userid, forbid, now_unix()).await?;
    let o = if forbid {
        let mut o = end(state, userid, 0).await?;
        if let Some(stream) = state.content.remove_linkmic(userid).await? {
            cut(state, userid, &stream, 0, &mut o).await;
        }
        o
    } else {
        let mut o = Outcome::new(false);
        // Tencent refuses the stream until it is enabled again (only then is the room read).
        let key = RoomKey::Live(userid.to_string());
        if tencent(state) {
            if let Ok((info, _)) = state.rooms.state(&key).await {
                if !info.stream.is_empty() {
                    set_tencent_status(state, userid, &info.stream, 1, &mut o).await;
                }
            }
        }
        o
    };
    tracing::info!(userid, forbid, cut = ?o.cut, failed = ?o.failed, "broadcast ban changed by an operator");
    Ok(o)
}

pub async fn forbid(state: &AppState, userid: &str, forbid: bool) -> Result<String, ApiError> {
    json(&set_ban(state, userid, forbid).await?)
}

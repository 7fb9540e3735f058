//! Co-hosting (link-mic): a co-host's own stream, signed play URLs between the VJ and
//! co-hosts, and mixing their streams into the VJ's (Tencent's mix API).

use super::{json, moderation};
use crate::model::now_unix;
use crate::protocol::types::{LinkMicAddr, MixAnswer, SignedPlayUrl};
use crate::protocol::ApiError;
use crate::room::RoomError;
use crate::sign;
use crate::state::AppState;
use crate::store::StoreError;
use crate::urls::Urls;

/// RequestLVBAddrForLinkMic: `{bizid}_{userid}_{txTime}`, pushed with a signed URL like a
/// broadcast's, and remembered so that its publish is admitted and its play URL signed.
pub async fn push_addr(state: &AppState, userid: &str) -> Result<String, ApiError> {
    moderation::refuse_banned(state, userid).await?;
    let live = &state.config.live;
    let push_key = super::push_key(state)?;
    let now = now_unix();
    let expiry = now.max(0) as u64 + live.url_validity_secs;
    let stream = format!(
        "{}_{}",
        sign::push::stream_name(&live.bizid, userid),
        sign::push::tx_time(expiry)
    );
    let taken = || {
        ApiError::param(format!(
            "userid '{userid}' maps to co-host stream '{stream}', which another user holds"
        ))
    };
    // The name could spell another user's broadcast stream (`{user}_{hex}`).
    if state
        .rooms
        .owner_of_stream(&stream)
        .await?
        .is_some_and(|vj| vj != userid)
    {
        return Err(taken());
    }
    match state
        .content
        .put_linkmic(userid, &stream, expiry as i64)
        .await
    {
        Err(StoreError::StreamTaken) => return Err(taken()),
        r => r?,
    }
    let urls = Urls::new(live);
    json(&LinkMicAddr {
        pushurl: urls.push(&stream, expiry, push_key),
        timestamp: now,
        playurl: urls.rtmp(&stream),
    })
}

/// The stream a play URL names: its last path segment, without an extension or query.
fn stream_of(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    let (scheme, rest) = path.split_once("://")?;
    if !["rtmp", "http", "https"].contains(&scheme) {
        return None;
    }
    let last = rest.rsplit('/').next()?;
    let stream = last.split('.').next()?;
    (!stream.is_empty() && rest.contains('/')).then_some(stream)
}

/// RequestPlayUrlWithSignForLinkMic: `originStreamUrl` with `txSecret`, `txTime` and
/// `bizid` appended, signed with the playback key (never the push key, which would make
/// the answer a push signature for someone else's stream), and only for a stream this
/// server issued that is live: a broadcast online now, or a co-host stream whose push URL
/// is still valid.
pub async fn signed_play_url(state: &AppState, origin: &str) -> Result<String, ApiError> {
    let live = &state.config.live;
    if live.play_key.is_empty() {
        return Err(ApiError::not_configured(
            "play URL signing is not configured on this server (live.play_key)",
        ));
    }
    let stream = stream_of(origin).ok_or_else(|| {
        ApiError::param(
            "field 'originStreamUrl' must be an rtmp:// or http(s):// URL ending in a stream name",
        )
    })?;
    let now = now_unix();
    let (owner, live_now) = match state.rooms.owner_of_stream(stream).await? {
        Some(vj) => {
            let key = crate::model::RoomKey::Live(vj.clone());
            let live = match state.rooms.state(&key).await {
                Ok((info, counters)) => counters.online && info.stream == stream,
                Err(RoomError::NoRoom(_) | RoomError::NoBroadcast(_)) => false,
                Err(e) => return Err(e.into()),
            };
            (Some(vj), live)
        }
        None => match state.content.linkmic_owner(stream).await? {
            Some((userid, expires)) => (Some(userid), expires >= now),
            None => (None, false),
        },
    };
    // No signed way in to a banned user's stream.
    if let Some(owner) = &owner {
        moderation::refuse_banned(state, owner).await?;
    }
    if !live_now {
        return Err(ApiError::new(
            crate::protocol::Code::UpdateFailed,
            format!("stream '{stream}' is not live on this server"),
        ));
    }
    let expiry = now.max(0) as u64 + live.url_validity_secs;
    let base = origin.split(['?', '#']).next().unwrap_or(origin);
    json(&SignedPlayUrl {
        stream_url_with_signature: Urls::new(live).signed_play(
            base,
            stream,
            expiry,
            live.play_key.expose(),
        ),
        timestamp: now,
    })
}

/// What a mix request may ask Tencent to do: start (or change) a mix, or cancel it.
const MIX_CALLS: [&str; 2] = [
    "mix_streamv2.start_mix_stream_advanced",
    "mix_streamv2.cancel_mix_stream",
];

/// MergeVideoStream: the app's mix parameters go to Tencent's mix API — only a mix into
/// the caller's own broadcast stream, named as its session and output — and the answer is
/// wrapped as the apps read it (`msg`, a JSON string).
pub async fn merge(state: &AppState, userid: &str, params: String) -> Result<String, ApiError> {
    let live = &state.config.live;
    let v: serde_json::Value = serde_json::from_str(&params)
        .map_err(|_| ApiError::param("field 'mergeparams' must be a JSON object"))?;
    let bad = |what: &str| ApiError::param(format!("mergeparams.interface.{what}"));
    if v["interface"]["interfaceName"] != "Mix_StreamV2" {
        return Err(bad("interfaceName must be \"Mix_StreamV2\""));
    }
    let para = &v["interface"]["para"];
    let call = para["interface"].as_str().unwrap_or("");
    if !MIX_CALLS.contains(&call) {
        return Err(bad(&format!("para.interface must be one of {MIX_CALLS:?}")));
    }
    // The caller's own stream: the one its current broadcast holds.
    let key = crate::model::RoomKey::Live(userid.to_string());
    let own = state.rooms.state(&key).await?.0.stream;
    for field in ["mix_stream_session_id", "output_stream_id"] {
        if para[field].as_str() != Some(own.as_str()) {
            return Err(bad(&format!(
                "para.{field} must be the caller's own stream '{own}'"
            )));
        }
    }
    let answer = crate::upstream::mix(live, params).await?;
    json(&MixAnswer { msg: answer })
}

#[cfg(test)]
mod tests {
    use super::stream_of;

    #[test]
    fn stream_names_of_urls() {
        assert_eq!(stream_of("rtmp://h/live/2519_a?x=1"), Some("2519_a"));
        assert_eq!(stream_of("http://h/live/2519_a.flv"), Some("2519_a"));
        assert_eq!(stream_of("https://h:1/live/2519_a.m3u8#t"), Some("2519_a"));
        assert_eq!(stream_of("rtmp://h/live/"), None);
        assert_eq!(stream_of("ftp://h/live/x"), None);
        assert_eq!(stream_of("rtmp://host"), None);
        assert_eq!(stream_of("2519_a"), None);
    }
}

//! Short videos (the apps' UGC tab): the VOD upload signature, the upload record, the list
//! (FetchList flag 5) and one video (GetUserInfo type 2).

use super::{json, EMPTY};
use crate::model::{now_unix, PusherInfo, UserInfo};
use crate::protocol::request::Page;
use crate::protocol::types::{PusherList, VodSignature};
use crate::protocol::ApiError;
use crate::sign;
use crate::state::AppState;
use crate::store::Video;

/// GetVodSignatureV2: a VOD client-upload signature from `[vod]`.
pub fn upload_signature(state: &AppState) -> Result<String, ApiError> {
    let v = &state.config.vod;
    if v.secret_id.is_empty() || v.secret_key.is_empty() {
        return Err(ApiError::not_configured(
            "video upload signing is not configured on this server (vod.secret_id, vod.secret_key)",
        ));
    }
    let now = now_unix().max(0) as u64;
    let grant = sign::vod::Grant {
        secret_id: &v.secret_id,
        now,
        expire: now + v.validity_secs,
        procedure: &v.procedure,
        random: rand::random(),
    };
    json(&VodSignature {
        signature: sign::vod::signature(v.secret_key.expose(), &grant),
    })
}

/// UploadUGCVideo: records a video the app uploaded to VOD.
pub async fn upload(
    state: &AppState,
    userid: String,
    file_id: String,
    title: String,
    play_url: String,
    userinfo: UserInfo,
) -> Result<String, ApiError> {
    let max = state.config.limits.max_videos_per_user;
    let video = Video {
        userid,
        file_id,
        title,
        play_url,
        userinfo,
        created_at: now_unix(),
    };
    if !state.content.put_video(&video, max).await? {
        return Err(ApiError::param(format!(
            "userid '{}' already has {max} short videos",
            video.userid
        )));
    }
    Ok(EMPTY.into())
}

/// A video as a list item: type 2, played from `playurl` (both URL fields carry it, as a
/// recording's do, so every app's rule finds it).
fn item(v: Video) -> PusherInfo {
    PusherInfo {
        userid: v.userid,
        groupid: String::new(),
        timestamp: v.created_at,
        kind: 2,
        viewercount: 0,
        likecount: 0,
        title: v.title,
        hls_play_url: v.play_url.clone(),
        playurl: v.play_url,
        fileid: v.file_id,
        status: "0".into(),
        userinfo: v.userinfo,
    }
}

/// FetchList flag 5: videos newest first.
pub async fn page(state: &AppState, page: Page) -> Result<String, ApiError> {
    let (total, videos) = state.content.videos(page.offset(), page.pagesize).await?;
    json(&PusherList {
        totalcount: total,
        pusherlist: videos.into_iter().map(item).collect(),
    })
}

/// GetUserInfo type 2: one video (by file id, or the user's newest).
pub async fn info(
    state: &AppState,
    userid: &str,
    file_id: Option<&str>,
) -> Result<String, ApiError> {
    match state.content.video(userid, file_id).await? {
        Some(v) => json(&item(v)),
        None => Err(ApiError::no_such_user(userid)),
    }
}

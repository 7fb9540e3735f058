//! What each Action does, independent of HTTP: a typed request in, `returnData` JSON out.
//! Rooms are reached through `Rooms`, accounts through `Accounts`; their failures become
//! protocol codes by `?` (see `protocol::error`). The apps' co-host, short-video and
//! moderation Actions live in the modules below.

mod linkmic;
pub mod moderation;
mod videos;

use crate::accounts::Guard;
use crate::config::Secret;
use crate::model::{now_unix, RoomInfo, RoomKey};
use crate::protocol::request::{InfoOf, Listing, Request, Target};
use crate::protocol::types::{CosSign, MemberList, PushAddr, UserInfo};
use crate::protocol::ApiError;
use crate::room::{RoomError, Viewer};
use crate::sign;
use crate::state::AppState;

/// Who is calling: the bearer token (header or body field) and the client address.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub token: Option<Secret>,
    pub peer: Option<std::net::IpAddr>,
}

pub const EMPTY: &str = "{}";

/// Runs one request. Returns the `returnData` object as JSON text.
pub async fn run(state: &AppState, req: Request, caller: &Caller) -> Result<String, ApiError> {
    if req.guard() == Guard::Admin {
        moderation::check_admin(state, req.action(), caller)?;
    }
    state
        .accounts
        .authorize(
            req.action(),
            req.guard(),
            caller.token.as_ref().map(Secret::expose),
        )
        .await?;
    let rooms = &state.rooms;
    match req {
        Request::ChangeCount {
            userid,
            likes,
            increase,
            recording,
        } => {
            let key = match recording {
                Some(fileid) => RoomKey::Recording { vj: userid, fileid },
                None => RoomKey::Live(userid),
            };
            // Viewer counts follow EnterGroup/QuitGroup: type 0 is accepted and ignored,
            // but the room must exist.
            if likes {
                rooms.like(&key, increase).await?;
            } else {
                rooms.state(&key).await?;
            }
            Ok(EMPTY.into())
        }
        Request::FetchList {
            list: Listing::Videos,
            page,
        } => Box::pin(videos::page(state, page)).await,
        Request::FetchList {
            list: Listing::Rooms(flag),
            page,
        } => {
            // A read of the shared index: no mailbox round trip on the hottest read. Items
            // were encoded once when their room changed: they are copied out under the lock.
            let list = state.list.read().unwrap_or_else(|e| e.into_inner());
            Ok(list.page(flag, page.offset(), page.pagesize).to_json())
        }
        Request::EnterGroup {
            userid,
            liveuserid,
            target,
            nickname,
            headpic,
        } => {
            let (key, groupid) = target_key(liveuserid, target);
            let viewer = Viewer {
                userid,
                nickname,
                headpic,
            };
            rooms.enter(&key, groupid, viewer).await?;
            Ok(EMPTY.into())
        }
        Request::QuitGroup {
            userid,
            liveuserid,
            target,
        } => {
            let (key, groupid) = target_key(liveuserid, target);
            rooms.quit(&key, userid, groupid).await?;
            Ok(EMPTY.into())
        }
        Request::FetchGroupMemberList {
            liveuserid,
            groupid,
            page,
        } => {
            // A group id names the live broadcast's group, or a recording's file id.
            let (offset, limit) = (page.offset(), page.pagesize);
            let live = RoomKey::Live(liveuserid.clone());
            let (total, members) = match rooms
                .members(&live, Some(groupid.clone()), offset, limit)
                .await
            {
                Ok(v) => v,
                Err(
                    e @ (RoomError::NoRoom(_)
                    | RoomError::NoBroadcast(_)
                    | RoomError::NoGroup { .. }),
                ) => {
                    let rec = RoomKey::Recording {
                        vj: liveuserid,
                        fileid: groupid,
                    };
                    match rooms.members(&rec, None, offset, limit).await {
                        Err(RoomError::NoRoom(_)) => return Err(e.into()),
                        r => r?,
                    }
                }
                Err(e) => return Err(e.into()),
            };
            json(&MemberList {
                totalcount: total,
                memberlist: members,
            })
        }
        Request::GetUserInfo {
            userid,
            of: InfoOf::Video(file_id),
        } => Box::pin(videos::info(state, &userid, file_id.as_deref())).await,
        Request::GetUserInfo { userid, of } => {
            let key = match of {
                InfoOf::Recording(fileid) => RoomKey::Recording {
                    vj: userid.clone(),
                    fileid,
                },
                _ => RoomKey::Live(userid.clone()),
            };
            match rooms.info(&key).await {
                Ok(info) => json(&info),
                Err(RoomError::NoRoom(_) | RoomError::NoBroadcast(_)) => {
                    Err(ApiError::no_such_user(&userid))
                }
                Err(e) => Err(e.into()),
            }
        }
        // The async Actions below are boxed: a request's future is as large as its largest state
        // and is moved whole, and these (accounts, upstream calls, the store) made every
        // room Action's future kilobytes larger.
        Request::RequestLvbAddr {
            userid,
            groupid,
            title,
            userinfo,
        } => Box::pin(request_lvb_addr(state, userid, groupid, title, userinfo)).await,
        Request::ChangeStatus { userid, online } => {
            Box::pin(async move {
                if online {
                    moderation::refuse_blocked(state, &userid).await?;
                }
                rooms.set_status(&userid, online).await?;
                Ok(EMPTY.into())
            })
            .await
        }
        Request::GetCosSign => {
            let c = &state.config.cos;
            if c.appid.is_empty() || c.bucket.is_empty() || c.secret_key.is_empty() {
                return Err(ApiError::not_configured(
                    "upload signing is not configured on this server (cos.appid, cos.bucket, cos.secret_key)",
                ));
            }
            let now = now_unix().max(0) as u64;
            let sign = sign::cos::sign(
                &c.appid,
                &c.bucket,
                &c.secret_id,
                c.secret_key.expose(),
                now,
                c.validity_secs,
            );
            json(&CosSign { sign })
        }
        Request::Register { userid, password } => {
            let password = password.expose().to_string();
            Box::pin(state.accounts.register(userid, password, caller.peer)).await?;
            Ok(EMPTY.into())
        }
        Request::Login { userid, password } => {
            json(&Box::pin(state.accounts.login(userid, password.expose())).await?)
        }
        Request::Refresh {
            userid,
            refresh_token,
        } => json(&Box::pin(state.accounts.refresh(userid, refresh_token.expose())).await?),
        Request::RequestLvbAddrForLinkMic {
            userid,
            title: _,
            userinfo: _,
        } => Box::pin(linkmic::push_addr(state, &userid)).await,
        Request::RequestPlayUrlWithSignForLinkMic {
            userid: _,
            origin_stream_url,
        } => Box::pin(linkmic::signed_play_url(state, &origin_stream_url)).await,
        Request::GetVodSignatureV2 => videos::upload_signature(state),
        Request::UploadUgcVideo {
            userid,
            file_id,
            title,
            play_url,
            userinfo,
        } => {
            Box::pin(videos::upload(
                state, userid, file_id, title, play_url, userinfo,
            ))
            .await
        }
        Request::ReportUser { userid, hostuserid } => {
            Box::pin(moderation::report(state, &userid, &hostuserid)).await
        }
        Request::MergeVideoStream {
            userid,
            mergeparams,
        } => Box::pin(linkmic::merge(state, &userid, mergeparams)).await,
        Request::StopLvb { userid } => Box::pin(moderation::stop(state, &userid)).await,
        Request::ForbidLive { userid, forbid } => {
            Box::pin(moderation::forbid(state, &userid, forbid)).await
        }
    }
}

/// The key push URLs are signed with, or 500 "not configured".
fn push_key(state: &AppState) -> Result<&str, ApiError> {
    let key = state.config.live.push_key.expose();
    if key.is_empty() {
        return Err(ApiError::not_configured(
            "push signing is not configured on this server (live.push_key)",
        ));
    }
    Ok(key)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v).map_err(|e| ApiError::internal("encoding the answer failed", &e))
}

fn target_key(liveuserid: String, target: Target) -> (RoomKey, Option<String>) {
    match target {
        Target::Live { groupid } => (RoomKey::Live(liveuserid), Some(groupid)),
        Target::Recording { fileid } => (
            RoomKey::Recording {
                vj: liveuserid,
                fileid,
            },
            None,
        ),
    }
}

async fn request_lvb_addr(
    state: &AppState,
    userid: String,
    groupid: String,
    title: String,
    userinfo: UserInfo,
) -> Result<String, ApiError> {
    moderation::admit_new_broadcast(state, &userid).await?;
    let live = &state.config.live;
    let push_key = push_key(state)?;
    let urls = crate::urls::Urls::new(live);
    let stream = sign::push::stream_name(&live.bizid, &userid);
    let now = now_unix();
    // A co-host stream (`{bizid}_{user}_{hex}`) can spell another user's broadcast stream.
    if let Some((holder, expires)) = state.content.linkmic_owner(&stream).await? {
        if holder != userid && expires >= now {
            return Err(ApiError::param(format!(
                "userid '{userid}' maps to stream name '{stream}', which another user's co-host stream uses"
            )));
        }
    }
    let info = RoomInfo {
        groupid,
        title,
        userinfo,
        playurl: urls.live_play(&stream),
        hls_play_url: urls.hls(&stream),
        stream: stream.clone(),
        timestamp: now,
        snapshot_url: String::new(),
    };
    state.rooms.new_broadcast(&userid, info).await?;
    let expiry = now.max(0) as u64 + live.url_validity_secs;
    json(&PushAddr {
        pushurl: urls.push(&stream, expiry, push_key),
        timestamp: now,
    })
}

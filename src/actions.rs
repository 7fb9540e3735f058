//! What each Action does, independent of HTTP: a typed request in, `returnData` JSON out.

use crate::app::AppState;
use crate::model::{now_unix, RoomInfo, RoomKey};
use crate::protocol::request::{Request, Target};
use crate::protocol::types::{CosSign, MemberList, PushAddr};
use crate::protocol::ApiError;
use crate::room::{Enter, GetInfo, Like, MemberPage, NewBroadcast, Quit, SetStatus};
use crate::sign;
use crate::supervisor::FetchList;

/// Who is calling: the bearer token (header or body field) and the client address.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub token: Option<String>,
    pub peer: Option<std::net::IpAddr>,
}

/// Runs one request. Returns the `returnData` object as JSON text.
pub async fn run(state: &AppState, req: Request, caller: &Caller) -> Result<String, ApiError> {
    crate::accounts::authorize(state, &req, caller).await?;
    match req {
        Request::RequestLvbAddr {
            userid,
            groupid,
            title,
            userinfo,
        } => request_lvb_addr(state, userid, groupid, title, userinfo).await,
        Request::ChangeStatus { userid, online } => {
            let room = live_room(state, &userid).await?;
            room.send(SetStatus { online })
                .await
                .map_err(ApiError::from_mailbox)??;
            Ok(EMPTY.into())
        }
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
            let room = room(state, &key).await?;
            // Viewer counts follow EnterGroup/QuitGroup; type 0 is accepted and ignored.
            if likes {
                room.send(Like { increase })
                    .await
                    .map_err(ApiError::from_mailbox)??;
            }
            Ok(EMPTY.into())
        }
        Request::FetchList { flag, page } => {
            let p = state
                .supervisor
                .send(FetchList {
                    flag,
                    offset: page.offset(),
                    limit: page.pagesize,
                })
                .await
                .map_err(ApiError::from_mailbox)?;
            let mut out =
                String::with_capacity(64 + p.items.iter().map(|i| i.len() + 1).sum::<usize>());
            out.push_str("{\"totalcount\":");
            out.push_str(&p.total.to_string());
            out.push_str(",\"pusherlist\":[");
            for (i, item) in p.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(item);
            }
            out.push_str("]}");
            Ok(out)
        }
        Request::GetCosSign => {
            let c = &state.config.cos;
            if c.appid.is_empty() || c.bucket.is_empty() || c.secret_key.is_empty() {
                return Err(ApiError::new(
                    crate::protocol::Code::Storage,
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
        Request::EnterGroup {
            userid,
            liveuserid,
            target,
            nickname,
            headpic,
        } => {
            let (key, groupid) = target_key(liveuserid, target);
            let room = room(state, &key).await?;
            room.send(Enter {
                userid,
                nickname,
                headpic,
                groupid,
            })
            .await
            .map_err(ApiError::from_mailbox)??;
            Ok(EMPTY.into())
        }
        Request::QuitGroup {
            userid,
            liveuserid,
            target,
        } => {
            let (key, groupid) = target_key(liveuserid, target);
            let room = room(state, &key).await?;
            room.send(Quit { userid, groupid })
                .await
                .map_err(ApiError::from_mailbox)?;
            Ok(EMPTY.into())
        }
        Request::FetchGroupMemberList {
            liveuserid,
            groupid,
            page,
        } => {
            // A group id names the live broadcast's group, or a recording's file id.
            let live = RoomKey::Live(liveuserid.clone());
            let msg = |g: Option<String>| MemberPage {
                groupid: g,
                offset: page.offset(),
                limit: page.pagesize,
            };
            let live_answer = match state.registry.get(&live).await? {
                Some(r) => r
                    .send(msg(Some(groupid.clone())))
                    .await
                    .map_err(ApiError::from_mailbox)?,
                None => Err(ApiError::not_found(format!(
                    "no room for liveuserid '{liveuserid}'"
                ))),
            };
            let (total, members) = match live_answer {
                Ok(v) => v,
                Err(e) => {
                    let rec = RoomKey::Recording {
                        vj: liveuserid,
                        fileid: groupid,
                    };
                    match state.registry.get(&rec).await? {
                        Some(r) => r.send(msg(None)).await.map_err(ApiError::from_mailbox)??,
                        None => return Err(e),
                    }
                }
            };
            json(&MemberList {
                totalcount: total,
                memberlist: members,
            })
        }
        Request::GetUserInfo { userid, recording } => {
            let key = match recording {
                Some(fileid) => RoomKey::Recording {
                    vj: userid.clone(),
                    fileid,
                },
                None => RoomKey::Live(userid.clone()),
            };
            let unknown = || {
                ApiError::new(
                    crate::protocol::Code::NoSuchUser,
                    format!("no room or recording for userid '{userid}'"),
                )
            };
            let room = state.registry.get(&key).await?.ok_or_else(unknown)?;
            let info = room
                .send(GetInfo)
                .await
                .map_err(ApiError::from_mailbox)?
                .ok_or_else(unknown)?;
            json(&info)
        }
        Request::Register { .. } | Request::Login { .. } | Request::Refresh { .. } => {
            crate::accounts::run(state, req, caller).await
        }
    }
}

pub const EMPTY: &str = "{}";

fn json<T: serde::Serialize>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v).map_err(|e| ApiError::storage(&e))
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

async fn room(state: &AppState, key: &RoomKey) -> Result<actix::Addr<crate::room::Room>, ApiError> {
    state.registry.get(key).await?.ok_or_else(|| match key {
        RoomKey::Live(vj) => ApiError::not_found(format!("no live room for userid '{vj}'")),
        RoomKey::Recording { vj, fileid } => {
            ApiError::not_found(format!("no recording '{fileid}' of userid '{vj}'"))
        }
    })
}

async fn live_room(
    state: &AppState,
    userid: &str,
) -> Result<actix::Addr<crate::room::Room>, ApiError> {
    room(state, &RoomKey::Live(userid.to_string())).await
}

async fn request_lvb_addr(
    state: &AppState,
    userid: String,
    groupid: String,
    title: String,
    userinfo: crate::protocol::types::UserInfo,
) -> Result<String, ApiError> {
    let live = &state.config.live;
    if live.push_key.is_empty() {
        return Err(ApiError::new(
            crate::protocol::Code::Storage,
            "push signing is not configured on this server (live.push_key)",
        ));
    }
    let urls = crate::urls::Urls::new(live);
    let stream = sign::push::stream_name(&live.bizid, &userid);
    let now = now_unix();
    let info = RoomInfo {
        groupid,
        title,
        userinfo,
        playurl: urls.flv(&stream),
        hls_play_url: urls.hls(&stream),
        stream: stream.clone(),
        timestamp: now,
        snapshot_url: String::new(),
    };
    let room = state.registry.live_or_new(&userid).await?;
    room.send(NewBroadcast { info })
        .await
        .map_err(ApiError::from_mailbox)??;
    let expiry = now.max(0) as u64 + live.url_validity_secs;
    json(&PushAddr {
        pushurl: urls.push(&stream, expiry, live.push_key.expose()),
        timestamp: now,
    })
}

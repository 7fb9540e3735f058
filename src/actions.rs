//! What each Action does, independent of HTTP: a typed request in, `returnData` JSON out.

use crate::app::AppState;
use crate::model::{now_unix, RoomInfo, RoomKey};
use crate::protocol::request::{Request, Target};
use crate::protocol::types::{CosSign, MemberList, PushAddr, UserInfo};
use crate::protocol::{ApiError, Code};
use crate::room::{
    Enter, GetInfo, GetState, Like, MemberPage, NewBroadcast, Quit, Room, SetStatus,
};
use crate::sign;
use actix::{Handler, Message};

/// Who is calling: the bearer token (header or body field) and the client address.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub token: Option<String>,
    pub peer: Option<std::net::IpAddr>,
}

pub const EMPTY: &str = "{}";

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
            ask(state, &RoomKey::Live(userid), SetStatus { online }).await??;
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
            // Viewer counts follow EnterGroup/QuitGroup: type 0 is accepted and ignored,
            // but the room must exist.
            if likes {
                ask(state, &key, Like { increase }).await??;
            } else {
                ask(state, &key, GetState)
                    .await?
                    .ok_or_else(|| missing(&key))?;
            }
            Ok(EMPTY.into())
        }
        Request::FetchList { flag, page } => {
            // A read of the shared index: no mailbox round trip on the hottest read. Items
            // were encoded once when their room changed: they are copied out under the lock.
            let list = state.list.read().unwrap_or_else(|e| e.into_inner());
            let p = list.page(flag, page.offset(), page.pagesize);
            let mut out =
                String::with_capacity(48 + p.items.iter().map(|i| i.len() + 1).sum::<usize>());
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
            drop(list);
            Ok(out)
        }
        Request::GetCosSign => {
            let c = &state.config.cos;
            if c.appid.is_empty() || c.bucket.is_empty() || c.secret_key.is_empty() {
                return Err(ApiError::new(
                    Code::Storage,
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
            ask(
                state,
                &key,
                Enter {
                    userid,
                    nickname,
                    headpic,
                    groupid,
                },
            )
            .await??;
            Ok(EMPTY.into())
        }
        Request::QuitGroup {
            userid,
            liveuserid,
            target,
        } => {
            let (key, groupid) = target_key(liveuserid, target);
            ask(state, &key, Quit { userid, groupid }).await?;
            Ok(EMPTY.into())
        }
        Request::FetchGroupMemberList {
            liveuserid,
            groupid,
            page,
        } => {
            // A group id names the live broadcast's group, or a recording's file id.
            let msg = |g: Option<String>| MemberPage {
                groupid: g,
                offset: page.offset(),
                limit: page.pagesize,
            };
            let live = RoomKey::Live(liveuserid.clone());
            let live_answer = state
                .registry
                .ask(&live, msg(Some(groupid.clone())))
                .await?
                .unwrap_or_else(|| Err(missing(&live)));
            let (total, members) = match live_answer {
                Ok(v) => v,
                Err(e) => {
                    let rec = RoomKey::Recording {
                        vj: liveuserid,
                        fileid: groupid,
                    };
                    match state.registry.ask(&rec, msg(None)).await? {
                        Some(r) => r?,
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
            let info = state
                .registry
                .ask(&key, GetInfo)
                .await?
                .flatten()
                .ok_or_else(|| {
                    ApiError::new(
                        Code::NoSuchUser,
                        format!("no room or recording for userid '{userid}'"),
                    )
                })?;
            json(&info)
        }
        Request::Register { .. } | Request::Login { .. } | Request::Refresh { .. } => {
            crate::accounts::run(state, req, caller).await
        }
    }
}

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

/// Sends to an existing room; 601 when the room is unknown.
async fn ask<M>(state: &AppState, key: &RoomKey, msg: M) -> Result<M::Result, ApiError>
where
    M: Message + Send + Clone + 'static,
    M::Result: Send,
    Room: Handler<M>,
{
    state
        .registry
        .ask(key, msg)
        .await?
        .ok_or_else(|| missing(key))
}

fn missing(key: &RoomKey) -> ApiError {
    match key {
        RoomKey::Live(vj) => ApiError::not_found(format!("no live room for userid '{vj}'")),
        RoomKey::Recording { vj, fileid } => {
            ApiError::not_found(format!("no recording '{fileid}' of userid '{vj}'"))
        }
    }
}

async fn request_lvb_addr(
    state: &AppState,
    userid: String,
    groupid: String,
    title: String,
    userinfo: UserInfo,
) -> Result<String, ApiError> {
    let live = &state.config.live;
    if live.push_key.is_empty() {
        return Err(ApiError::new(
            Code::Storage,
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
    state
        .registry
        .ask_live_or_new(&userid, NewBroadcast { info })
        .await??;
    let expiry = now.max(0) as u64 + live.url_validity_secs;
    json(&PushAddr {
        pushurl: urls.push(&stream, expiry, live.push_key.expose()),
        timestamp: now,
    })
}

//! Answer shapes. Field names and JSON types are the wire protocol's.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub nickname: String,
    pub headpic: String,
    pub frontcover: String,
    pub location: String,
}

/// One item of every room list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PusherInfo {
    pub userid: String,
    pub groupid: String,
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub kind: i64,
    pub viewercount: u64,
    pub likecount: u64,
    pub title: String,
    pub playurl: String,
    pub hls_play_url: String,
    pub fileid: String,
    pub status: String,
    pub userinfo: UserInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub userid: String,
    pub nickname: String,
    pub headpic: String,
}

#[derive(Debug, Serialize)]
pub struct PushAddr {
    pub pushurl: String,
    pub timestamp: i64,
}

#[derive(Debug, Serialize)]
pub struct MemberList {
    pub totalcount: usize,
    pub memberlist: Vec<MemberInfo>,
}

#[derive(Debug, Serialize)]
pub struct CosSign {
    pub sign: String,
}

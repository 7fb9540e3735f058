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

/// A `PusherInfo` over borrowed fields. The list encodes every changed room on every tick;
/// this spares copying the room's strings to do it. Serializes exactly as `PusherInfo`.
#[derive(Debug, Serialize)]
pub struct PusherInfoRef<'a> {
    pub userid: &'a str,
    pub groupid: &'a str,
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub kind: i64,
    pub viewercount: u64,
    pub likecount: u64,
    pub title: &'a str,
    pub playurl: &'a str,
    pub hls_play_url: &'a str,
    pub fileid: &'a str,
    pub status: &'a str,
    pub userinfo: &'a UserInfo,
}

impl PusherInfoRef<'_> {
    pub fn to_owned(&self) -> PusherInfo {
        PusherInfo {
            userid: self.userid.into(),
            groupid: self.groupid.into(),
            timestamp: self.timestamp,
            kind: self.kind,
            viewercount: self.viewercount,
            likecount: self.likecount,
            title: self.title.into(),
            playurl: self.playurl.into(),
            hls_play_url: self.hls_play_url.into(),
            fileid: self.fileid.into(),
            status: self.status.into(),
            userinfo: self.userinfo.clone(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_pusher_info_encodes_like_the_owned_one() {
        let userinfo = UserInfo {
            nickname: "主播 \"one\"".into(),
            headpic: "http://img/a.png".into(),
            frontcover: String::new(),
            location: "深圳".into(),
        };
        let r = PusherInfoRef {
            userid: "vj",
            groupid: "g_vj",
            timestamp: 1_700_000_000,
            kind: 0,
            viewercount: 12,
            likecount: 34,
            title: "title\n",
            playurl: "http://play/vj.flv",
            hls_play_url: "http://play/vj.m3u8",
            fileid: "",
            status: "1",
            userinfo: &userinfo,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            serde_json::to_string(&r.to_owned()).unwrap()
        );
    }
}

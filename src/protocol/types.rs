//! Answer shapes. Field names and JSON types are the wire protocol's.

use serde::Serialize;
use utoipa::ToSchema;

pub use crate::accounts::{Im, TokenSet};
pub use crate::model::{MemberInfo, PusherInfo, PusherInfoRef, UserInfo};

#[derive(Debug, Serialize, ToSchema)]
pub struct PushAddr {
    pub pushurl: String,
    pub timestamp: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub totalcount: usize,
    pub memberlist: Vec<MemberInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CosSign {
    pub sign: String,
}

/// A page of a list (FetchList): rooms, recordings or short videos.
#[derive(Debug, Serialize, ToSchema)]
pub struct PusherList {
    pub totalcount: u64,
    pub pusherlist: Vec<PusherInfo>,
}

/// RequestLVBAddrForLinkMic.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkMicAddr {
    pub pushurl: String,
    pub timestamp: i64,
    /// The co-host stream for the VJ to pull (`rtmp://`, as the apps expect).
    pub playurl: String,
}

/// RequestPlayUrlWithSignForLinkMic.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedPlayUrl {
    #[serde(rename = "streamUrlWithSignature")]
    pub stream_url_with_signature: String,
    pub timestamp: i64,
}

/// MergeVideoStream.
#[derive(Debug, Serialize, ToSchema)]
pub struct MixAnswer {
    /// The mix service's answer as JSON text: the apps parse this string for its `code`.
    pub msg: String,
}

/// GetVodSignatureV2.
#[derive(Debug, Serialize, ToSchema)]
pub struct VodSignature {
    pub signature: String,
}

/// What StopLVB or ForbidLive did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModerationOutcome {
    pub result: i32,
    /// Whether the room was online and is now offline.
    pub ended: bool,
    /// The media-server controls that applied the change ("nginx-rtmp", "tencent").
    pub cut: Vec<&'static str>,
    /// Those that were asked and failed (logged); the change holds here regardless.
    pub failed: Vec<&'static str>,
}

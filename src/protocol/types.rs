//! Answer shapes. Field names and JSON types are the wire protocol's.

use serde::Serialize;

pub use crate::model::{MemberInfo, PusherInfo, PusherInfoRef, UserInfo};

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

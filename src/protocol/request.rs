//! Parsing a request body into a typed `Request`, once, at the edge.

use super::error::ApiError;
use super::fields::{Fields, ObjectError};
use crate::accounts::Guard;
use crate::config::{LimitsConfig, Secret};
pub use crate::model::ListFlag;
use crate::model::UserInfo;
use strum::EnumDiscriminants;

/// Which broadcast a room operation targets: the VJ's live room or one of its recordings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Live { groupid: String },
    Recording { fileid: String },
}

/// What FetchList pages: one of the room lists, or the short videos (flag 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Rooms(ListFlag),
    Videos,
}

/// Whose description GetUserInfo returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoOf {
    Live,
    Recording(String),
    /// A short video by file id, or the user's newest.
    Video(Option<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub pageno: usize,
    pub pagesize: usize,
}

impl Page {
    pub fn offset(&self) -> usize {
        (self.pageno - 1).saturating_mul(self.pagesize)
    }
}

/// One parsed Action. Its name, its parser below and its guard are all here; `Action`
/// (the variant names, as the protocol spells them) is derived from it, so a new variant
/// is named, listed in the metrics and parsed by name without another list to keep.
#[derive(Debug, Clone, PartialEq, Eq, EnumDiscriminants)]
#[strum_discriminants(
    name(Action),
    derive(Hash, strum::IntoStaticStr, strum::EnumString, strum::EnumIter),
    doc = "An Action name, as the protocol spells it."
)]
pub enum Request {
    #[strum_discriminants(strum(serialize = "RequestLVBAddr"))]
    RequestLvbAddr {
        userid: String,
        groupid: String,
        title: String,
        userinfo: UserInfo,
    },
    ChangeStatus {
        userid: String,
        online: bool,
    },
    ChangeCount {
        userid: String,
        likes: bool,
        increase: bool,
        recording: Option<String>,
    },
    FetchList {
        list: Listing,
        page: Page,
    },
    #[strum_discriminants(strum(serialize = "GetCOSSign"))]
    GetCosSign,
    EnterGroup {
        userid: String,
        liveuserid: String,
        target: Target,
        nickname: String,
        headpic: String,
    },
    QuitGroup {
        userid: String,
        liveuserid: String,
        target: Target,
    },
    FetchGroupMemberList {
        liveuserid: String,
        groupid: String,
        page: Page,
    },
    GetUserInfo {
        userid: String,
        of: InfoOf,
    },
    Register {
        userid: String,
        password: Secret,
    },
    Login {
        userid: String,
        password: Secret,
    },
    Refresh {
        userid: String,
        refresh_token: Secret,
    },
    /// A co-host's (link-mic) own stream: a push URL and its RTMP play URL.
    #[strum_discriminants(strum(serialize = "RequestLVBAddrForLinkMic"))]
    RequestLvbAddrForLinkMic {
        userid: String,
        title: String,
        userinfo: UserInfo,
    },
    /// A signed play URL of a live stream, for a co-host to pull at low latency.
    RequestPlayUrlWithSignForLinkMic {
        userid: String,
        origin_stream_url: String,
    },
    GetVodSignatureV2,
    #[strum_discriminants(strum(serialize = "UploadUGCVideo"))]
    UploadUgcVideo {
        userid: String,
        file_id: String,
        title: String,
        play_url: String,
        userinfo: UserInfo,
    },
    ReportUser {
        userid: String,
        hostuserid: String,
    },
    /// Stream mixing for link-mic: `mergeparams` (JSON text) goes to Tencent's mix API.
    MergeVideoStream {
        userid: String,
        mergeparams: String,
    },
    /// Moderation (the admin token): end a VJ's broadcast.
    #[strum_discriminants(strum(serialize = "StopLVB"))]
    StopLvb {
        userid: String,
    },
    /// Moderation (the admin token): ban (and cut) or unban a VJ.
    ForbidLive {
        userid: String,
        forbid: bool,
    },
}

/// Bound on any password-like field before it is even looked at.
const MAX_SECRET_LEN: usize = 256;
/// Page numbers beyond this cannot reach any item and would only overflow arithmetic.
const MAX_PAGENO: i64 = 10_000_000;

impl Action {
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Every Action, in declaration order.
    pub fn all() -> impl Iterator<Item = Action> {
        <Action as strum::IntoEnumIterator>::iter()
    }
}

impl Request {
    /// The Action name, for logs and metrics.
    pub fn action(&self) -> &'static str {
        Action::from(self).name()
    }

    /// Who may send this request when authentication is on: a VJ's own actions need that
    /// VJ's token, a like any user's token, lists and accounts none.
    pub fn guard(&self) -> Guard<'_> {
        match self {
            Request::RequestLvbAddr { userid, .. }
            | Request::ChangeStatus { userid, .. }
            | Request::EnterGroup { userid, .. }
            | Request::QuitGroup { userid, .. }
            | Request::RequestLvbAddrForLinkMic { userid, .. }
            | Request::RequestPlayUrlWithSignForLinkMic { userid, .. }
            | Request::UploadUgcVideo { userid, .. }
            | Request::ReportUser { userid, .. }
            | Request::MergeVideoStream { userid, .. } => Guard::Owner(userid),
            Request::ChangeCount { .. } | Request::GetCosSign | Request::GetVodSignatureV2 => {
                Guard::AnyUser
            }
            Request::StopLvb { .. } | Request::ForbidLive { .. } => Guard::Admin,
            Request::FetchList { .. }
            | Request::FetchGroupMemberList { .. }
            | Request::GetUserInfo { .. }
            | Request::Register { .. }
            | Request::Login { .. }
            | Request::Refresh { .. } => Guard::Public,
        }
    }

    /// Parses a whole body. Returns the request and the body's `token` field, if any.
    pub fn parse(
        body: &[u8],
        limits: &LimitsConfig,
    ) -> Result<(Request, Option<Secret>), ApiError> {
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(ApiError::param(
                "empty body: expected a JSON object with an 'Action' field",
            ));
        }
        let f = Fields::parse(body).map_err(|e| match e {
            ObjectError::Syntax(line, column) => ApiError::param(format!(
                "body is not valid JSON (line {line}, column {column})"
            )),
            ObjectError::NotObject => ApiError::param("body must be a JSON object"),
        })?;
        let action = match f.str("Action") {
            Some(a) => a,
            None if f.has("Action") => {
                return Err(ApiError::param("field 'Action' must be a string"))
            }
            None => return Err(ApiError::param("missing required field 'Action'")),
        };
        let token = f.opt_string("token", 512)?.map(Secret::new);
        let req = Self::parse_action(&action, &f, limits)?;
        Ok((req, token))
    }

    fn parse_action(name: &str, f: &Fields, l: &LimitsConfig) -> Result<Request, ApiError> {
        let uid = l.max_userid_len;
        let secret = |field| f.string(field, MAX_SECRET_LEN).map(Secret::new);
        let action: Action = match name.parse() {
            Ok(a) => a,
            Err(_) if name.is_empty() => {
                return Err(ApiError::param("field 'Action' must not be empty"))
            }
            Err(_) => {
                let shown: String = name.chars().take(64).collect();
                return Err(ApiError::param(format!("unknown Action '{shown}'")));
            }
        };
        Ok(match action {
            Action::RequestLvbAddr => Request::RequestLvbAddr {
                userid: f.string("userid", uid)?,
                groupid: f.string("groupid", uid)?,
                title: f.string("title", l.max_title_len)?,
                userinfo: parse_userinfo(f, l)?,
            },
            Action::ChangeStatus => Request::ChangeStatus {
                userid: f.string("userid", uid)?,
                online: f.choice("status", &[0, 1])? == 0,
            },
            Action::ChangeCount => {
                let userid = f.string("userid", uid)?;
                let likes = f.choice("type", &[0, 1])? == 1;
                let increase = f.choice("optype", &[0, 1])? == 0;
                let flag = f.opt_choice("flag", &[0, 1])?.unwrap_or(0);
                let recording = if flag == 1 {
                    Some(f.string("fileid", uid)?)
                } else {
                    None
                };
                Request::ChangeCount {
                    userid,
                    likes,
                    increase,
                    recording,
                }
            }
            Action::FetchList => {
                let list = match f.choice("flag", &[1, 2, 3, 5])? {
                    1 => Listing::Rooms(ListFlag::Live),
                    2 => Listing::Rooms(ListFlag::Recordings),
                    3 => Listing::Rooms(ListFlag::Both),
                    _ => Listing::Videos,
                };
                Request::FetchList {
                    list,
                    page: parse_page(f)?,
                }
            }
            Action::GetCosSign => Request::GetCosSign,
            Action::EnterGroup => Request::EnterGroup {
                userid: f.string("userid", uid)?,
                liveuserid: f.string("liveuserid", uid)?,
                target: parse_target(f, "flag", uid)?,
                nickname: f
                    .opt_string("nickname", l.max_name_len)?
                    .unwrap_or_default(),
                headpic: f.opt_string("headpic", l.max_url_len)?.unwrap_or_default(),
            },
            Action::QuitGroup => Request::QuitGroup {
                userid: f.string("userid", uid)?,
                liveuserid: f.string("liveuserid", uid)?,
                target: parse_target(f, "flag", uid)?,
            },
            Action::FetchGroupMemberList => Request::FetchGroupMemberList {
                liveuserid: f.string("liveuserid", uid)?,
                groupid: f.string("groupid", uid)?,
                page: parse_page(f)?,
            },
            Action::GetUserInfo => {
                let userid = f.string("userid", uid)?;
                let of = match f.opt_choice("type", &[0, 1, 2])?.unwrap_or(0) {
                    0 => InfoOf::Live,
                    1 => InfoOf::Recording(f.string("fileid", uid)?),
                    _ => InfoOf::Video(f.opt_string("fileid", uid)?.filter(|s| !s.is_empty())),
                };
                Request::GetUserInfo { userid, of }
            }
            Action::Register => Request::Register {
                userid: f.string("userid", uid)?,
                password: secret("password")?,
            },
            Action::Login => Request::Login {
                userid: f.string("userid", uid)?,
                password: secret("password")?,
            },
            Action::Refresh => Request::Refresh {
                userid: f.string("userid", uid)?,
                refresh_token: secret("refresh_token")?,
            },
            Action::RequestLvbAddrForLinkMic => Request::RequestLvbAddrForLinkMic {
                userid: f.string("userid", uid)?,
                title: f.opt_string("title", l.max_title_len)?.unwrap_or_default(),
                userinfo: parse_userinfo(f, l)?,
            },
            Action::RequestPlayUrlWithSignForLinkMic => Request::RequestPlayUrlWithSignForLinkMic {
                userid: f.string("userid", uid)?,
                origin_stream_url: f.string("originStreamUrl", l.max_url_len)?,
            },
            Action::GetVodSignatureV2 => Request::GetVodSignatureV2,
            Action::UploadUgcVideo => Request::UploadUgcVideo {
                userid: f.string("userid", uid)?,
                file_id: f.string("file_id", uid)?,
                title: f.opt_string("title", l.max_title_len)?.unwrap_or_default(),
                play_url: parse_play_url(f, l)?,
                userinfo: parse_userinfo(f, l)?,
            },
            Action::ReportUser => Request::ReportUser {
                userid: f.string("userid", uid)?,
                hostuserid: f.string("hostuserid", uid)?,
            },
            Action::MergeVideoStream => Request::MergeVideoStream {
                userid: f.string("userid", uid)?,
                mergeparams: f.object_text("mergeparams")?,
            },
            Action::StopLvb => Request::StopLvb {
                userid: f.string("userid", uid)?,
            },
            Action::ForbidLive => Request::ForbidLive {
                userid: f.string("userid", uid)?,
                forbid: f.choice("forbidflag", &[0, 1])? == 1,
            },
        })
    }
}

fn parse_userinfo(f: &Fields, l: &LimitsConfig) -> Result<UserInfo, ApiError> {
    let Some(u) = f.opt_object("userinfo")? else {
        return Ok(UserInfo::default());
    };
    let field = |name: &str, max: usize| {
        u.opt_string(name, max)
            .map(Option::unwrap_or_default)
            .map_err(|e| ApiError::param(e.msg.replacen("field '", "field 'userinfo.", 1)))
    };
    Ok(UserInfo {
        nickname: field("nickname", l.max_name_len)?,
        headpic: field("headpic", l.max_url_len)?,
        frontcover: field("frontcover", l.max_url_len)?,
        location: field("location", l.max_name_len)?,
    })
}

/// A short video's URL: http(s), as the apps play it.
fn parse_play_url(f: &Fields, l: &LimitsConfig) -> Result<String, ApiError> {
    let url = f.string("play_url", l.max_url_len)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ApiError::param(
            "field 'play_url' must be an http:// or https:// URL",
        ));
    }
    Ok(url)
}

fn parse_target(f: &Fields, flag_name: &str, max: usize) -> Result<Target, ApiError> {
    let flag = f.opt_choice(flag_name, &[0, 1])?.unwrap_or(0);
    let groupid = f.string("groupid", max)?;
    Ok(if flag == 1 {
        Target::Recording { fileid: groupid }
    } else {
        Target::Live { groupid }
    })
}

fn parse_page(f: &Fields) -> Result<Page, ApiError> {
    let pageno = f.opt_int("pageno")?.unwrap_or(1).clamp(1, MAX_PAGENO) as usize;
    let pagesize = f.opt_int("pagesize")?.unwrap_or(20).clamp(1, 100) as usize;
    Ok(Page { pageno, pagesize })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, ApiError> {
        Request::parse(s.as_bytes(), &LimitsConfig::default()).map(|(r, _)| r)
    }

    #[test]
    fn numbers_as_strings_and_clamping() {
        let r = parse(r#"{"Action":"FetchList","flag":"1","pageno":"0","pagesize":1000}"#).unwrap();
        assert_eq!(
            r,
            Request::FetchList {
                list: Listing::Rooms(ListFlag::Live),
                page: Page {
                    pageno: 1,
                    pagesize: 100
                }
            }
        );
    }

    #[test]
    fn precise_messages() {
        let e = parse(r#"{"Action":"ChangeStatus","userid":"a","status":2}"#).unwrap_err();
        assert_eq!(e.msg, "field 'status' must be one of 0, 1, got 2");
        let e = parse(r#"{"Action":"ChangeStatus","status":0}"#).unwrap_err();
        assert_eq!(e.msg, "missing required field 'userid'");
        let e = parse(r#"[1]"#).unwrap_err();
        assert_eq!(e.msg, "body must be a JSON object");
        let e = parse(r#"{"Action":"RequestLVBAddr","userid":"a","groupid":"g","title":"t","userinfo":{"nickname":5.5}}"#).unwrap_err();
        assert_eq!(e.msg, "field 'userinfo.nickname' must be a string");
    }

    #[test]
    fn secrets_never_print() {
        let r =
            parse(r#"{"Action":"Login","userid":"alice","password":"hunter2hunter2"}"#).unwrap();
        let shown = format!("{r:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        let r =
            parse(r#"{"Action":"Refresh","userid":"alice","refresh_token":"tok-secret"}"#).unwrap();
        assert!(!format!("{r:?}").contains("tok-secret"));
    }

    /// Names are the protocol's spelling, parse back to themselves, and every Action is one.
    #[test]
    fn action_names_round_trip() {
        let names: Vec<&str> = Action::all().map(Action::name).collect();
        assert_eq!(names.len(), 20);
        assert!(names.contains(&"RequestLVBAddr") && names.contains(&"GetCOSSign"));
        for name in names {
            assert_eq!(name.parse::<Action>().unwrap().name(), name);
        }
        let e = parse(r#"{"Action":"requestlvbaddr"}"#).unwrap_err();
        assert_eq!(e.msg, "unknown Action 'requestlvbaddr'");
    }

    #[test]
    fn recording_needs_fileid() {
        let e = parse(r#"{"Action":"ChangeCount","userid":"a","type":1,"optype":0,"flag":1}"#)
            .unwrap_err();
        assert_eq!(e.msg, "missing required field 'fileid'");
    }

    /// Fields are read from the body's raw text: escapes, repeats, nulls and number forms
    /// must read exactly as a parsed JSON map would give them.
    #[test]
    fn raw_fields_read_like_json() {
        let r = parse(
            r#"{"Act\u0069on":"EnterGroup","userid":"a\"b\u00e9","liveuserid":12,"groupid":"g","groupid":"g2","flag":null,"nickname":"观众","headpic":"","extra":{"deep":[1,{"x":null}]}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::EnterGroup {
                userid: "a\"bé".into(),
                liveuserid: "12".into(),
                target: Target::Live {
                    groupid: "g2".into()
                },
                nickname: "观众".into(),
                headpic: String::new(),
            }
        );
        let e = parse(r#"{"Action":"ChangeStatus","userid":1.5,"status":0}"#).unwrap_err();
        assert_eq!(e.msg, "field 'userid' must be a string");
        let e = parse(r#"{"Action":"ChangeStatus","userid":"a","status":1e0}"#).unwrap_err();
        assert_eq!(e.msg, "field 'status' must be an integer");
        let e = parse(r#"{"Action":"ChangeStatus","userid":"a","status":true}"#).unwrap_err();
        assert_eq!(e.msg, "field 'status' must be an integer");
        let e = parse(r#"{"Action":7}"#).unwrap_err();
        assert_eq!(e.msg, "field 'Action' must be a string");
        let e = parse(r#"{"Action":null}"#).unwrap_err();
        assert_eq!(e.msg, "missing required field 'Action'");
        let e = parse(r#"{"Action":"FetchList","flag":1} x"#).unwrap_err();
        assert!(e.msg.starts_with("body is not valid JSON"), "{}", e.msg);
        let e = parse(r#"{"Action":"FetchList","#).unwrap_err();
        assert!(e.msg.starts_with("body is not valid JSON"), "{}", e.msg);
        let e = parse(r#""FetchList""#).unwrap_err();
        assert_eq!(e.msg, "body must be a JSON object");
        let e = parse(
            r#"{"Action":"RequestLVBAddr","userid":"a","groupid":"g","title":"t","userinfo":[1]}"#,
        )
        .unwrap_err();
        assert_eq!(e.msg, "field 'userinfo' must be an object");
        let big =
            parse(r#"{"Action":"ChangeStatus","userid":18446744073709551615,"status":0}"#).unwrap();
        assert_eq!(
            big,
            Request::ChangeStatus {
                userid: "18446744073709551615".into(),
                online: true
            }
        );
    }
}

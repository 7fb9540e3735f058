//! Each Action's body as data: its fields, their types and bounds, and the codes it can
//! answer. `openapi` turns this into the published document; the tests below hold it to
//! what `request::Request::parse` accepts (a body made from it parses, a body missing any
//! required field fails naming it), so the document cannot drift from the parser.

use super::request::Action;
use super::Code;
use crate::config::LimitsConfig;

/// A field's type as the parser reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string of at most this many bytes (a JSON integer is read as its digits).
    Str(usize),
    /// An integer: a JSON integer or a string of digits.
    Int,
    /// One of these integers (JSON integer or string of digits).
    Choice(&'static [i64]),
    /// The `userinfo` object.
    UserInfo,
    /// A JSON object, or a string holding one.
    JsonObject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub doc: &'static str,
}

/// Bound on password-like fields (as `request` applies it).
pub const MAX_SECRET: usize = 256;
/// Bound on the `token` field.
pub const MAX_TOKEN: usize = 512;

const fn req(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        doc,
    }
}

const fn opt(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        doc,
    }
}

/// The fields of one Action's body (besides `Action` and the optional `token`).
pub fn fields(action: Action, l: &LimitsConfig) -> Vec<Field> {
    use Kind::*;
    let uid = Str(l.max_userid_len);
    let page = [
        opt("pageno", Int, "page number from 1 (clamped to 1..10000000)"),
        opt(
            "pagesize",
            Int,
            "items per page (clamped to 1..100; default 20)",
        ),
    ];
    let userinfo = opt(
        "userinfo",
        UserInfo,
        "nickname, headpic, frontcover, location (all optional strings)",
    );
    match action {
        Action::RequestLvbAddr => vec![
            req("userid", uid, "the VJ"),
            req("groupid", uid, "the IM group of the broadcast"),
            req("title", Str(l.max_title_len), "the broadcast's title"),
            userinfo,
        ],
        Action::ChangeStatus => vec![
            req("userid", uid, "the VJ"),
            req("status", Choice(&[0, 1]), "0 online, 1 offline"),
        ],
        Action::ChangeCount => vec![
            req("userid", uid, "the VJ whose room (or recording) it is"),
            req(
                "type",
                Choice(&[0, 1]),
                "0 viewers (accepted, ignored), 1 likes",
            ),
            req("optype", Choice(&[0, 1]), "0 increase, 1 decrease"),
            opt(
                "flag",
                Choice(&[0, 1]),
                "0 live room (default), 1 recording",
            ),
            opt("fileid", uid, "the recording (required with flag 1)"),
        ],
        Action::FetchList => {
            let mut f = vec![req(
                "flag",
                Choice(&[1, 2, 3, 5]),
                "1 live, 2 recordings, 3 both, 5 short videos",
            )];
            f.extend(page);
            f
        }
        Action::GetCosSign | Action::GetVodSignatureV2 => vec![],
        Action::EnterGroup | Action::QuitGroup => {
            let mut f = vec![
                req("userid", uid, "the viewer"),
                req("liveuserid", uid, "the VJ"),
                req(
                    "groupid",
                    uid,
                    "the broadcast's group, or the recording's file id (flag 1)",
                ),
                opt(
                    "flag",
                    Choice(&[0, 1]),
                    "0 live room (default), 1 recording",
                ),
            ];
            if action == Action::EnterGroup {
                f.push(opt(
                    "nickname",
                    Str(l.max_name_len),
                    "the viewer's nickname",
                ));
                f.push(opt(
                    "headpic",
                    Str(l.max_url_len),
                    "the viewer's picture URL",
                ));
            }
            f
        }
        Action::FetchGroupMemberList => {
            let mut f = vec![
                req("liveuserid", uid, "the VJ"),
                req(
                    "groupid",
                    uid,
                    "the broadcast's group, or a recording's file id",
                ),
            ];
            f.extend(page);
            f
        }
        Action::GetUserInfo => vec![
            req("userid", uid, "the VJ (or the short video's uploader)"),
            opt(
                "type",
                Choice(&[0, 1, 2]),
                "0 live room (default), 1 recording, 2 short video",
            ),
            opt(
                "fileid",
                uid,
                "the recording (required with type 1) or short video",
            ),
        ],
        Action::Register | Action::Login => vec![
            req("userid", uid, "3-24 characters: letters, digits, '_'"),
            req("password", Str(MAX_SECRET), "8-16 characters"),
        ],
        Action::Refresh => vec![
            req("userid", uid, "the user"),
            req(
                "refresh_token",
                Str(MAX_SECRET),
                "from Login or the last Refresh",
            ),
        ],
        Action::RequestLvbAddrForLinkMic => vec![
            req("userid", uid, "the co-host"),
            opt("title", Str(l.max_title_len), "ignored, as by the original"),
            userinfo,
        ],
        Action::RequestPlayUrlWithSignForLinkMic => vec![
            req("userid", uid, "the caller"),
            req(
                "originStreamUrl",
                Str(l.max_url_len),
                "a play URL whose last path segment names the stream",
            ),
        ],
        Action::UploadUgcVideo => vec![
            req("userid", uid, "the uploader"),
            req("file_id", uid, "the VOD file id"),
            opt("title", Str(l.max_title_len), "the video's title"),
            req("play_url", Str(l.max_url_len), "an http:// or https:// URL"),
            userinfo,
        ],
        Action::ReportUser => vec![
            req("userid", uid, "the reporter"),
            req("hostuserid", uid, "the VJ reported"),
        ],
        Action::MergeVideoStream => vec![
            req("userid", uid, "the VJ whose stream the mix outputs"),
            req(
                "mergeparams",
                JsonObject,
                "Tencent's Mix_StreamV2 parameters (interface.para names the caller's stream)",
            ),
        ],
        Action::StopLvb => vec![req("userid", uid, "the VJ")],
        Action::ForbidLive => vec![
            req("userid", uid, "the VJ"),
            req("forbidflag", Choice(&[0, 1]), "1 bans, 0 lifts the ban"),
        ],
    }
}

/// What an Action does, in a line.
pub fn summary(action: Action) -> &'static str {
    match action {
        Action::RequestLvbAddr => "A VJ starts a broadcast: a signed push URL",
        Action::ChangeStatus => "A VJ's broadcast goes online or offline",
        Action::ChangeCount => "A like on a live room or recording",
        Action::FetchList => "A page of live rooms, recordings or short videos",
        Action::GetCosSign => "A COS v4 upload signature",
        Action::EnterGroup => "A viewer enters a room or recording",
        Action::QuitGroup => "A viewer leaves",
        Action::FetchGroupMemberList => "A page of a room's members, newest first",
        Action::GetUserInfo => "A room's, recording's or short video's list item",
        Action::Register => "A new account",
        Action::Login => "Tokens and the IM identity",
        Action::Refresh => "New tokens for a refresh token",
        Action::RequestLvbAddrForLinkMic => "A co-host's own stream: push URL and RTMP play URL",
        Action::RequestPlayUrlWithSignForLinkMic => "A live stream's play URL, signed",
        Action::GetVodSignatureV2 => "A Tencent VOD client-upload signature",
        Action::UploadUgcVideo => "Records an uploaded short video",
        Action::ReportUser => "A viewer reports a VJ",
        Action::MergeVideoStream => "Mixes co-host streams into the VJ's (Tencent's mix API)",
        Action::StopLvb => "An operator ends a broadcast (admin token)",
        Action::ForbidLive => "An operator bans or unbans a VJ (admin token)",
    }
}

/// The codes an Action can answer besides 0 (every Action can also answer 602 for a
/// malformed body and 500 when storage fails).
pub fn codes(action: Action) -> Vec<Code> {
    use Code::*;
    let mut c = vec![InvalidParam, Storage, Verification];
    match action {
        Action::ChangeStatus
        | Action::ChangeCount
        | Action::EnterGroup
        | Action::QuitGroup
        | Action::FetchGroupMemberList
        | Action::RequestPlayUrlWithSignForLinkMic
        | Action::MergeVideoStream => c.push(UpdateFailed),
        Action::GetUserInfo => c.push(NoSuchUser),
        Action::Register => c.extend([BadUserName, BadPassword, UserExists, TooManyRequests]),
        Action::Login => c.extend([NoSuchUser, WrongPassword, TooManyRequests]),
        _ => {}
    }
    if action == Action::MergeVideoStream {
        c.push(TooManyRequests);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Request;
    use serde_json::{json, Map, Value};

    /// A valid value of a field, as the app would send it.
    fn sample(f: &Field) -> Value {
        match f.kind {
            Kind::Str(_) => match f.name {
                "play_url" | "originStreamUrl" => json!("http://h/live/s.flv"),
                "password" => json!("correct horse"),
                _ => json!("abc_1"),
            },
            Kind::Int => json!(1),
            Kind::Choice(c) => json!(c[0]),
            Kind::UserInfo => json!({"nickname": "n"}),
            Kind::JsonObject => json!({}),
        }
    }

    fn body(action: Action, fields: &[Field], leave_out: Option<&str>) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("Action".into(), json!(action.name()));
        for f in fields.iter().filter(|f| f.required) {
            if Some(f.name) != leave_out {
                m.insert(f.name.into(), sample(f));
            }
        }
        serde_json::to_vec(&Value::Object(m)).unwrap()
    }

    /// Every Action parses from its required fields alone, and fails naming each one
    /// that is left out: the schema says what the parser does.
    #[test]
    fn the_schema_is_what_the_parser_reads() {
        let l = LimitsConfig::default();
        for action in Action::all() {
            let fields = fields(action, &l);
            let parsed = Request::parse(&body(action, &fields, None), &l);
            assert!(parsed.is_ok(), "{}: {:?}", action.name(), parsed.err());
            for f in fields.iter().filter(|f| f.required) {
                let e = Request::parse(&body(action, &fields, Some(f.name)), &l).unwrap_err();
                assert_eq!(
                    e.msg,
                    format!("missing required field '{}'", f.name),
                    "{}",
                    action.name()
                );
            }
            for f in &fields {
                if let Kind::Str(max) = f.kind {
                    let mut m: Map<String, Value> =
                        serde_json::from_slice(&body(action, &fields, None)).unwrap();
                    m.insert(f.name.into(), json!("x".repeat(max + 1)));
                    match Request::parse(&serde_json::to_vec(&m).unwrap(), &l) {
                        Err(e) => assert!(
                            e.msg.contains("too long"),
                            "{}.{}: {}",
                            action.name(),
                            f.name,
                            e.msg
                        ),
                        // Read only with another field's value, as its doc says.
                        Ok(_) => assert!(
                            !f.required && f.doc.contains("required with"),
                            "{}.{} over its bound was accepted",
                            action.name(),
                            f.name
                        ),
                    }
                }
            }
        }
    }
}

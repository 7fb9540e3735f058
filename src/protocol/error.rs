//! The one place where failures become protocol codes: rooms, accounts and the store say
//! what went wrong in their own terms, and the `From` impls here choose the code and the
//! client's message. Nothing is logged or counted here: the code that writes the answer
//! does that (`internal` holds what the client must not see).

use crate::accounts::AccountError;
use crate::model::RoomKey;
use crate::room::RoomError;
use crate::store::StoreError;
use std::fmt;

/// `returnValue` codes of the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    TooManyRequests = 429,
    Verification = 498,
    Storage = 500,
    UpdateFailed = 601,
    InvalidParam = 602,
    BadUserName = 610,
    BadPassword = 611,
    UserExists = 612,
    NoSuchUser = 620,
    WrongPassword = 621,
}

impl Code {
    pub fn value(self) -> i32 {
        self as i32
    }
}

/// A failure that reaches the client: a code and a precise, secret-free message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub msg: String,
    /// A server-side cause, for the log only: SQL text or a library's error never reaches
    /// a client.
    pub internal: Option<Internal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Internal {
    /// The database failed (counted in `minilvb_database_errors_total`).
    pub storage: bool,
    pub detail: String,
}

/// Exactly the protocol's text for a throttled Register.
pub const REGISTER_REJECTED: &str = "Registration operation is rejected for security reason";

impl ApiError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        ApiError {
            code,
            msg: msg.into(),
            internal: None,
        }
    }
    pub fn param(msg: impl Into<String>) -> Self {
        Self::new(Code::InvalidParam, msg)
    }
    pub fn auth(msg: impl Into<String>) -> Self {
        Self::new(Code::Verification, msg)
    }
    /// A feature this server was not configured for (which keys to set, never their values).
    pub fn not_configured(msg: impl Into<String>) -> Self {
        Self::new(Code::Storage, msg)
    }
    /// A server-side failure: the client is told to retry, the log gets `detail`.
    pub fn internal(msg: impl Into<String>, detail: &dyn fmt::Display) -> Self {
        ApiError {
            internal: Some(Internal {
                storage: false,
                detail: detail.to_string(),
            }),
            ..Self::new(Code::Storage, msg)
        }
    }
    /// GetUserInfo of a userid with neither a room nor the named recording.
    pub fn no_such_user(userid: &str) -> Self {
        Self::new(
            Code::NoSuchUser,
            format!("no room or recording for userid '{userid}'"),
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.msg, self.code.value())
    }
}

/// A media service this server calls failed: the client may retry; nothing secret is in
/// the message.
impl From<crate::upstream::UpstreamError> for ApiError {
    fn from(e: crate::upstream::UpstreamError) -> Self {
        use crate::upstream::UpstreamError as U;
        match e {
            U::NotConfigured(_) => ApiError::not_configured(e.to_string()),
            U::Busy => ApiError::new(Code::TooManyRequests, format!("{e}; retry")),
            _ => ApiError {
                internal: Some(Internal {
                    storage: false,
                    detail: e.to_string(),
                }),
                ..ApiError::new(Code::Storage, format!("{e}; retry"))
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError {
            internal: Some(Internal {
                storage: true,
                detail: e.to_string(),
            }),
            ..ApiError::new(Code::Storage, "storage operation failed, please retry")
        }
    }
}

fn no_room(key: &RoomKey) -> String {
    match key {
        RoomKey::Live(vj) => format!("no live room for userid '{vj}'"),
        RoomKey::Recording { vj, fileid } => format!("no recording '{fileid}' of userid '{vj}'"),
    }
}

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::NoRoom(key) => ApiError::new(Code::UpdateFailed, no_room(&key)),
            RoomError::NoBroadcast(vj) => {
                ApiError::new(Code::UpdateFailed, format!("no room for userid '{vj}'"))
            }
            RoomError::NoGroup { vj, groupid } => ApiError::new(
                Code::UpdateFailed,
                format!("room of '{vj}' has no group '{groupid}' (its current group is another)"),
            ),
            RoomError::Full { vj, max } => {
                ApiError::param(format!("room of '{vj}' is full ({max} members)"))
            }
            RoomError::StreamTaken { vj, stream } => ApiError::param(format!(
                "userid '{vj}' maps to stream name '{stream}', which another user's room already uses"
            )),
            RoomError::TooManySubscribers { vj, max } => ApiError::new(
                Code::TooManyRequests,
                format!("room of '{vj}' has its maximum of {max} subscribers"),
            ),
            // Not a storage failure: the server is at its configured bound; retry later.
            RoomError::AtCapacity { max } => ApiError {
                internal: Some(Internal {
                    storage: false,
                    detail: format!("room limit reached (limits.max_rooms = {max})"),
                }),
                ..ApiError::new(
                    Code::TooManyRequests,
                    "this server holds its maximum number of rooms; retry later",
                )
            },
            RoomError::Moved(key) => ApiError::internal(
                "the room moved to another server, please retry",
                &format!("write fenced: {key:?} is held by another server"),
            ),
            RoomError::Unavailable => ApiError::internal(
                "the room is unavailable, please retry",
                &"room actor unavailable",
            ),
            RoomError::Store(e) => e.into(),
            RoomError::RemoteStore(detail) => ApiError {
                internal: Some(Internal {
                    storage: true,
                    detail: format!("on the owning node: {detail}"),
                }),
                ..ApiError::new(Code::Storage, "storage operation failed, please retry")
            },
            RoomError::Peer(detail) => ApiError::internal(
                "the room's server did not answer, please retry",
                &format!("forwarding failed: {detail}"),
            ),
            RoomError::NotOwner => ApiError::internal(
                "the room's server is not known right now, please retry",
                &"forwarded to a node that does not own the room",
            ),
            RoomError::NoOwner(detail) => ApiError::internal(
                "the room's server is not known right now, please retry",
                &format!("no owner: {detail}"),
            ),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        use AccountError as A;
        let new = |code, msg: String| ApiError::new(code, msg);
        match e {
            A::BadUserName => new(
                Code::BadUserName,
                "field 'userid' must be 4 to 24 letters, digits or '_', starting with a letter".into(),
            ),
            A::BadPassword => new(
                Code::BadPassword,
                "field 'password' must be 8 to 64 printable ASCII characters".into(),
            ),
            A::RegisterThrottled => new(Code::TooManyRequests, REGISTER_REJECTED.into()),
            A::UserExists(u) => new(Code::UserExists, format!("userid '{u}' already exists")),
            A::NoSuchUser(u) => new(Code::NoSuchUser, format!("userid '{u}' is not registered")),
            A::LoginThrottled { userid, retry_secs } => new(
                Code::TooManyRequests,
                format!("too many failed logins for userid '{userid}'; retry in {retry_secs} seconds"),
            ),
            A::LoginBusy(u) => new(
                Code::TooManyRequests,
                format!("too many logins for userid '{u}' at once; retry shortly"),
            ),
            A::WrongPassword => new(Code::WrongPassword, "wrong password".into()),
            A::RefreshRefused => ApiError::auth(
                "refresh_token is unknown, expired, revoked or not this userid's; Login again",
            ),
            A::RefreshReused => ApiError::auth(
                "refresh_token was already used; every token of this login is revoked, Login again",
            ),
            A::TokenMissing { action } => ApiError::auth(format!(
                "{action} needs a token from Login: send 'Authorization: Bearer <token>' or a 'token' field"
            )),
            A::TokenInvalid => {
                ApiError::auth("token is unknown, expired or revoked; Refresh or Login again")
            }
            A::TokenNotOwner(u) => {
                ApiError::auth(format!("the token does not belong to userid '{u}'"))
            }
            A::HasherBusy => new(
                Code::TooManyRequests,
                "the server is busy checking passwords, please retry shortly".into(),
            ),
            A::Hashing(detail) => ApiError::internal(
                "password check failed on the server, please retry",
                &detail,
            ),
            A::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What clients read for each room failure: the codes of PROTOCOL.md, and the texts
    /// the server has always sent.
    #[test]
    fn room_failures_become_codes() {
        let vj = || "vj".to_string();
        let cases: Vec<(RoomError, Code, &str)> = vec![
            (
                RoomError::NoRoom(RoomKey::Live(vj())),
                Code::UpdateFailed,
                "no live room for userid 'vj'",
            ),
            (
                RoomError::NoRoom(RoomKey::Recording {
                    vj: vj(),
                    fileid: "f".into(),
                }),
                Code::UpdateFailed,
                "no recording 'f' of userid 'vj'",
            ),
            (
                RoomError::NoBroadcast(vj()),
                Code::UpdateFailed,
                "no room for userid 'vj'",
            ),
            (
                RoomError::NoGroup {
                    vj: vj(),
                    groupid: "g".into(),
                },
                Code::UpdateFailed,
                "room of 'vj' has no group 'g' (its current group is another)",
            ),
            (
                RoomError::Full { vj: vj(), max: 3 },
                Code::InvalidParam,
                "room of 'vj' is full (3 members)",
            ),
            (
                RoomError::TooManySubscribers { vj: vj(), max: 2 },
                Code::TooManyRequests,
                "room of 'vj' has its maximum of 2 subscribers",
            ),
            (
                RoomError::AtCapacity { max: 9 },
                Code::TooManyRequests,
                "this server holds its maximum number of rooms; retry later",
            ),
            (
                RoomError::Unavailable,
                Code::Storage,
                "the room is unavailable, please retry",
            ),
            (
                RoomError::Moved(RoomKey::Live(vj())),
                Code::Storage,
                "the room moved to another server, please retry",
            ),
            (
                RoomError::RemoteStore("down".into()),
                Code::Storage,
                "storage operation failed, please retry",
            ),
            (
                RoomError::Peer("timed out".into()),
                Code::Storage,
                "the room's server did not answer, please retry",
            ),
            (
                RoomError::NotOwner,
                Code::Storage,
                "the room's server is not known right now, please retry",
            ),
            (
                RoomError::NoOwner("redis down".into()),
                Code::Storage,
                "the room's server is not known right now, please retry",
            ),
        ];
        for (e, code, msg) in cases {
            let a = ApiError::from(e);
            assert_eq!((a.code, a.msg.as_str()), (code, msg));
        }
    }

    /// A storage failure reaches the log (through `internal`), never the client.
    #[test]
    fn storage_causes_stay_internal() {
        let e = ApiError::from(RoomError::Store(StoreError::InexactKeys(
            "SELECT secret FROM t".into(),
        )));
        assert_eq!(e.code, Code::Storage);
        assert!(!e.msg.contains("SELECT"), "{}", e.msg);
        let cause = e.internal.expect("a cause for the log");
        assert!(cause.storage && cause.detail.contains("SELECT"));
        let e = ApiError::from(AccountError::Hashing("argon2: bad params".into()));
        assert!(!e.msg.contains("argon2") && !e.internal.unwrap().storage);
    }
}

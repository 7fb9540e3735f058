//! Why an account operation was refused, in the accounts' own terms (`protocol::error`
//! gives each its code and the client's message).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("userid breaks the naming rules")]
    BadUserName,
    #[error("password breaks the rules")]
    BadPassword,
    #[error("registration throttled")]
    RegisterThrottled,
    #[error("userid '{0}' already exists")]
    UserExists(String),
    #[error("userid '{0}' is not registered")]
    NoSuchUser(String),
    #[error("too many failed logins for userid '{userid}'")]
    LoginThrottled { userid: String, retry_secs: u64 },
    #[error("too many logins for userid '{0}' at once")]
    LoginBusy(String),
    #[error("wrong password")]
    WrongPassword,
    /// Unknown, expired, revoked or another userid's refresh token.
    #[error("refresh token refused")]
    RefreshRefused,
    /// A rotated refresh token came back: its whole login was revoked.
    #[error("refresh token reused")]
    RefreshReused,
    /// The Action needs a token and none came.
    #[error("{action} needs a token")]
    TokenMissing { action: &'static str },
    #[error("token unknown, expired or revoked")]
    TokenInvalid,
    #[error("the token is not userid '{0}''s")]
    TokenNotOwner(String),
    /// Every password-hashing slot stayed busy for the queue's whole wait.
    #[error("password hashing busy")]
    HasherBusy,
    /// Hashing itself failed (the text is argon2's and never holds the password).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

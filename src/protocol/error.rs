//! The one place where failures become protocol codes.

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
}

impl ApiError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        ApiError {
            code,
            msg: msg.into(),
        }
    }
    pub fn param(msg: impl Into<String>) -> Self {
        Self::new(Code::InvalidParam, msg)
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(Code::UpdateFailed, msg)
    }
    pub fn auth(msg: impl Into<String>) -> Self {
        Self::new(Code::Verification, msg)
    }
    /// Storage failures are logged with their cause but answered without it: SQL text and
    /// connection strings must not reach clients.
    pub fn storage(err: &dyn fmt::Display) -> Self {
        tracing::warn!(error = %err, "storage operation failed");
        crate::metrics::DB_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::new(Code::Storage, "storage operation failed, please retry")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.msg, self.code.value())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::storage(&e)
    }
}

impl ApiError {
    /// An actor stopped or its mailbox closed while a request waited on it.
    pub fn from_mailbox(e: actix::MailboxError) -> Self {
        tracing::error!(error = %e, "actor unavailable");
        Self::new(Code::Storage, "the room is unavailable, please retry")
    }
}

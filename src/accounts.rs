//! Accounts: Register, Login, Refresh, and who may act as whom.

use crate::actions::Caller;
use crate::app::AppState;
use crate::protocol::{ApiError, Request};

/// Checks that the caller may run `req` (PROTOCOL.md section 2, "Clients send the token").
pub async fn authorize(
    _state: &AppState,
    _req: &Request,
    _caller: &Caller,
) -> Result<(), ApiError> {
    Ok(())
}

pub async fn run(_state: &AppState, req: Request, _caller: &Caller) -> Result<String, ApiError> {
    Err(ApiError::param(format!(
        "Action '{}' is not available on this server yet",
        req.action()
    )))
}

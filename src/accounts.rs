//! Accounts: Register, Login, Refresh.

use crate::app::AppState;
use crate::protocol::{ApiError, Request};

pub async fn run(_state: &AppState, req: Request) -> Result<String, ApiError> {
    Err(ApiError::param(format!(
        "Action '{}' is not available on this server yet",
        req.action()
    )))
}

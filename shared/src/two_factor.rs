//! Two-factor authentication by SMS.

use serde_json::Value;
use crate::user::User;
use crate::{ApiError, App, Principal};

/// Sends a fresh login code to the user's verified number.
pub async fn send_login_code(_app: &App, _user: &User) -> Result<(), ApiError> {
    Err(ApiError::TwoFactorProvider)
}

/// Checks `code` for the caller: completes a 2FA login (the full login body) or activates a
/// pending enrolment (the user).
pub async fn verify(_app: &App, _principal: &Principal, _code: &str) -> Result<Value, ApiError> {
    Err(ApiError::CodeNotValid)
}

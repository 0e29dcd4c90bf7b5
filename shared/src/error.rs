//! The one application error type. `ApiError::status`/`ApiError::into_response` are the only
//! place where HTTP statuses and the seed's messages are chosen.

use std::collections::BTreeMap;

use lambda_http::http::StatusCode;
use serde_json::json;

/// The `Retry-After` of a 503: the SDK has already retried with backoff for about this long.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// Field name → messages, for validation errors.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // 400
    #[error("request body is not valid")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("Page is invalid.")]
    PageInvalid,
    #[error("Email is required.")]
    EmailRequired,
    #[error("Email address is required.")]
    EmailAddressRequired,
    #[error("Password is required.")]
    PasswordRequired,
    #[error("Current password is required.")]
    CurrentPasswordRequired,
    #[error("Invalid user UUID.")]
    InvalidUserUuid,
    /// The `PUT /users/{uuid}/roles` spelling, without the final period.
    #[error("Invalid user UUID")]
    InvalidUserUuidForRoles,
    #[error("Invalid UUID.")]
    InvalidUuid,
    #[error("Code is required.")]
    CodeRequired,
    #[error("Code is not valid. Please use the resend code button to request a new one.")]
    CodeNotValid,
    #[error("Session Id does not exist.")]
    SessionIdDoesNotExist,
    #[error("Error returned from two factor authentication provider")]
    TwoFactorProvider,
    #[error("Valid email address is required.")]
    ValidEmailRequired,
    #[error("Token must be valid string")]
    TokenMustBeValidString,
    #[error("Token is required.")]
    TokenRequired,
    #[error("Token is invalid or expired.")]
    TokenInvalidOrExpired,
    #[error("Cannot verify email for inactive user.")]
    CannotVerifyInactive,
    #[error("The token is expired.")]
    VerificationTokenExpired,
    #[error("Two-factor authentication is not enabled.")]
    TwoFactorNotEnabled,
    /// A registration ceremony that failed (400); the login one is [`Self::PasskeyLoginFailed`].
    #[error("Passkey could not be verified.")]
    PasskeyNotVerified,
    // 401
    #[error("Invalid token")]
    InvalidToken,
    #[error("Bad email and password combination.")]
    BadCredentials,
    #[error("Password is incorrect.")]
    WrongPassword,
    #[error("Passkey could not be verified.")]
    PasskeyLoginFailed,
    // 403
    #[error("No Access.")]
    NoAccess,
    #[error("You do not have access to update another user.")]
    UpdateAnotherUser,
    /// The `PUT /users/{uuid}/roles` spelling, without the final period.
    #[error("You do not have access to update another user")]
    UpdateAnotherUserRoles,
    #[error("Admin user does not have permission to update another user's password.")]
    AdminCannotSetPassword,
    #[error("You do not have permission to disable two factor auth for another user.")]
    DisableAnotherUsersTwoFactor,
    // 404
    #[error("Not Found")]
    RouteNotFound,
    #[error("This user does not exist.")]
    UserNotFound,
    /// The `PUT /users/{uuid}/roles` spelling, without the final period.
    #[error("This user does not exist")]
    UserNotFoundForRoles,
    #[error("This role does not exist.")]
    RoleNotFound,
    #[error("User UUID not found.")]
    UserUuidNotFound,
    #[error("User account not found.  JWT cannot be refreshed.")]
    RefreshUserNotFound,
    #[error("User sessionUUID not found.  JWT cannot be refreshed.")]
    RefreshSessionNotFound,
    #[error("Passkey not found.")]
    PasskeyNotFound,
    #[error("Authenticator app is not pending.")]
    TotpNotPending,
    #[error("Authenticator app is not enabled.")]
    TotpNotEnabled,
    // others
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    #[error("Email is already in use.")]
    EmailTaken,
    #[error("Authenticator app is already enabled.")]
    TotpAlreadyEnabled,
    #[error("Too many passkeys.")]
    TooManyPasskeys,
    #[error("This passkey is already registered.")]
    PasskeyTaken,
    #[error("The user was changed by another request. Fetch it again and retry.")]
    VersionConflict,
    #[error("Request body is too large.")]
    PayloadTooLarge,
    #[error("Content-Type must be application/json.")]
    UnsupportedMediaType,
    #[error("Please update the app.")]
    UpgradeRequired,
    #[error("Too many requests. Try again later.")]
    TooManyRequests { retry_after_secs: u64 },
    /// A dependency (the table) did not answer or throttled after retries. The cause is
    /// logged, never returned; nothing was written, so the client may simply retry.
    #[error("The service is temporarily unavailable. Try again later.")]
    ServiceUnavailable(String),
    #[error("Too many diagnostic reports.")]
    TooManyReports { retry_after_secs: u64 },
    /// Anything unexpected. The cause is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// A validation error on one field.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(name.to_owned(), vec![message.into()]);
        Self::Validation(fields)
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            BadRequest(_)
            | Validation(_)
            | PageInvalid
            | EmailRequired
            | EmailAddressRequired
            | PasswordRequired
            | CurrentPasswordRequired
            | InvalidUserUuid
            | InvalidUserUuidForRoles
            | InvalidUuid
            | CodeRequired
            | CodeNotValid
            | SessionIdDoesNotExist
            | TwoFactorProvider
            | ValidEmailRequired
            | TokenMustBeValidString
            | TokenRequired
            | TokenInvalidOrExpired
            | CannotVerifyInactive
            | VerificationTokenExpired
            | TwoFactorNotEnabled
            | PasskeyNotVerified => StatusCode::BAD_REQUEST,
            InvalidToken | BadCredentials | WrongPassword | PasskeyLoginFailed => {
                StatusCode::UNAUTHORIZED
            }
            NoAccess
            | UpdateAnotherUser
            | UpdateAnotherUserRoles
            | AdminCannotSetPassword
            | DisableAnotherUsersTwoFactor => StatusCode::FORBIDDEN,
            RouteNotFound
            | UserNotFound
            | UserNotFoundForRoles
            | RoleNotFound
            | UserUuidNotFound
            | RefreshUserNotFound
            | RefreshSessionNotFound
            | PasskeyNotFound
            | TotpNotPending
            | TotpNotEnabled => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            EmailTaken | TooManyPasskeys | PasskeyTaken | TotpAlreadyEnabled => {
                StatusCode::CONFLICT
            }
            VersionConflict => StatusCode::PRECONDITION_FAILED,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            TooManyRequests { .. } | TooManyReports { .. } => StatusCode::TOO_MANY_REQUESTS,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable snake_case `code` of the error body.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            BadRequest(_) => "bad_request",
            Validation(_) => "validation_failed",
            PageInvalid => "page_invalid",
            EmailRequired | EmailAddressRequired => "email_required",
            PasswordRequired => "password_required",
            CurrentPasswordRequired => "current_password_required",
            InvalidUserUuid | InvalidUserUuidForRoles => "invalid_user_uuid",
            InvalidUuid => "invalid_uuid",
            CodeRequired => "code_required",
            CodeNotValid => "code_not_valid",
            SessionIdDoesNotExist => "session_not_found",
            TwoFactorProvider => "two_factor_provider_error",
            ValidEmailRequired => "valid_email_required",
            TokenMustBeValidString | TokenInvalidOrExpired | VerificationTokenExpired => {
                "token_invalid"
            }
            TokenRequired => "token_required",
            CannotVerifyInactive => "user_inactive",
            InvalidToken => "invalid_token",
            BadCredentials => "bad_credentials",
            WrongPassword => "wrong_password",
            PasskeyNotVerified | PasskeyLoginFailed => "passkey_not_verified",
            PasskeyNotFound => "passkey_not_found",
            TooManyPasskeys => "too_many_passkeys",
            PasskeyTaken => "passkey_taken",
            TwoFactorNotEnabled => "two_factor_not_enabled",
            TotpNotPending => "totp_not_pending",
            TotpNotEnabled => "totp_not_enabled",
            TotpAlreadyEnabled => "totp_already_enabled",
            NoAccess
            | UpdateAnotherUser
            | UpdateAnotherUserRoles
            | AdminCannotSetPassword
            | DisableAnotherUsersTwoFactor => "forbidden",
            RouteNotFound => "not_found",
            UserNotFound | UserNotFoundForRoles | UserUuidNotFound | RefreshUserNotFound => {
                "user_not_found"
            }
            RoleNotFound => "role_not_found",
            RefreshSessionNotFound => "session_not_found",
            MethodNotAllowed => "method_not_allowed",
            EmailTaken => "email_taken",
            VersionConflict => "precondition_failed",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            UpgradeRequired => "upgrade_required",
            TooManyRequests { .. } | TooManyReports { .. } => "too_many_requests",
            Internal(_) => "internal_error",
            ServiceUnavailable(_) => "service_unavailable",
        }
    }

    /// The human `message` of the error body: the seed's words where it has them.
    pub fn message(&self) -> String {
        match self {
            Self::BadRequest(message) => message.clone(),
            Self::Validation(_) => "Validation failed.".to_owned(),
            Self::Internal(_) => "Internal server error.".to_owned(),
            Self::ServiceUnavailable(_) => {
                "The service is temporarily unavailable. Try again later.".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The one mapping from an error to an HTTP response.
    pub fn into_response(self) -> crate::http::Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut error = json!({ "code": self.code(), "message": self.message() });
        if let Self::Validation(fields) = &self {
            error["fields"] = json!(fields);
        }
        let mut response = crate::http::json_response(status, &json!({ "error": error }));
        let retry_after = match self {
            Self::TooManyRequests { retry_after_secs }
            | Self::TooManyReports { retry_after_secs } => Some(retry_after_secs.max(1)),
            Self::ServiceUnavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(lambda_http::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<crate::domain::StoreError> for ApiError {
    fn from(error: crate::domain::StoreError) -> Self {
        use crate::domain::StoreError;
        match error {
            StoreError::EmailTaken => Self::EmailTaken,
            StoreError::VersionConflict => Self::VersionConflict,
            StoreError::CredentialTaken => Self::PasskeyTaken,
            StoreError::TooManyPasskeys => Self::TooManyPasskeys,
            // Each service says what a missing item means on its route (a session, a code, a
            // token…); one that reaches here was not expected.
            StoreError::NotFound => {
                Self::Internal("storage found no item where one was expected".into())
            }
            StoreError::Backend(cause) => Self::Internal(cause),
            StoreError::Unavailable(cause) => Self::ServiceUnavailable(cause),
        }
    }
}

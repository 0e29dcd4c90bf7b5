//! Route group `sessions`: login, 2FA verification, logout, refresh, a user's sessions (list,
//! sign out everywhere else) and the JWKS.

use lambda_http::Request;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use shared::domain::email::Email;
use shared::domain::ids::{SessionId, UserId};
use shared::domain::session::clip_user_agent;
use shared::http;
use shared::http::views;
use shared::http::{Response, Route};
use shared::service::sessions;
use shared::service::sessions::{DeviceInfo, LoginOutcome};
use shared::{Access, ApiError, SmsContext};

pub async fn handle(app: &impl SmsContext, req: Request) -> Response {
    http::serve("sessions", req, |req, path| route(app, req, path)).await
}

async fn route(app: &impl SmsContext, req: Request, path: Route) -> Result<Response, ApiError> {
    match (path.method.clone(), path.segments().as_slice()) {
        (Method::POST, ["users", "sessions"]) => login(app, &req).await,
        (Method::POST, ["users", "sessions", "verify"]) => verify(app, &req).await,
        (Method::DELETE, ["users", "sessions", id]) => logout(app, &req, id).await,
        (Method::PUT, ["users", "sessions", id, "refresh"]) => refresh(app, &req, id).await,
        (Method::GET, ["users", uuid, "sessions"]) => list(app, &req, uuid).await,
        (Method::DELETE, ["users", uuid, "sessions"]) => end_others(app, &req, uuid).await,
        (Method::GET, [".well-known", "jwks.json"]) => Ok(jwks(app)),
        _ => Err(ApiError::RouteNotFound),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: Option<String>,
    password: Option<String>,
}

async fn login(app: &impl SmsContext, req: &Request) -> Result<Response, ApiError> {
    let body: LoginBody = http::json_body(req)?;
    // An address over 254 bytes is no account's: refused like a wrong password, but before
    // the lockout and user lookups, whose keys it would overflow (once both fields are there,
    // so a missing one still gets its own 400).
    let both_given = body.email.as_deref().is_some_and(|e| !e.trim().is_empty())
        && body.password.as_deref().is_some_and(|p| !p.is_empty());
    if both_given && body.email.as_deref().is_some_and(Email::too_long) {
        return Err(ApiError::BadCredentials);
    }
    match sessions::login(app.core(), body.email, body.password, user_agent(req)).await? {
        LoginOutcome::Complete { tokens, user } => Ok(http::data(
            StatusCode::CREATED,
            views::login(&tokens, &user),
        )),
        LoginOutcome::TwoFactorRequired { user, session } => {
            shared::service::two_factor::send_login_code(app.core(), app.sms(), &user, &session)
                .await?;
            let token = sessions::two_factor_token(app.core(), &user, &session);
            Ok(http::data(
                StatusCode::CREATED,
                views::two_factor_login(&token, session.id, &user),
            ))
        }
    }
}

/// The `User-Agent` a session records (at most 256 characters).
fn user_agent(req: &Request) -> Option<String> {
    http::header(req.headers(), "user-agent").and_then(clip_user_agent)
}

async fn verify(app: &impl SmsContext, req: &Request) -> Result<Response, ApiError> {
    let principal = app
        .core()
        .authenticate(req, Access::FullOrTwoFactor)
        .await?;
    let body: shared::service::two_factor::CodeBody = http::json_body(req)?;
    let code = body.code().ok_or(ApiError::CodeRequired)?;
    let verified = shared::service::two_factor::verify(app.core(), &principal, code).await?;
    Ok(http::data(StatusCode::CREATED, views::verified(&verified)))
}

async fn logout(app: &impl SmsContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    let session_id = SessionId::parse(id).ok_or(ApiError::SessionIdDoesNotExist)?;
    sessions::logout(app.core(), &principal, session_id).await?;
    Ok(http::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: Option<String>,
    app_version: Option<String>,
    build_number: Option<i64>,
    device_token: Option<String>,
    platform: Option<String>,
}

impl RefreshBody {
    /// Validates every field (the seed's patterns and enums) before the token is used.
    fn validate(self) -> Result<(String, DeviceInfo), ApiError> {
        let mut fields = shared::error::FieldErrors::new();
        let mut fail = |name: &str, message: &str| {
            fields
                .entry(name.to_owned())
                .or_default()
                .push(message.to_owned())
        };
        let refresh_token = self.refresh_token.filter(|t| !t.is_empty());
        if refresh_token.is_none() {
            fail("refreshToken", "Is required.");
        }
        if let Some(version) = &self.app_version {
            let parts: Vec<&str> = version.split('.').collect();
            let valid = parts.len() == 3
                && parts.iter().all(|p| {
                    !p.is_empty() && p.len() <= 9 && p.chars().all(|c| c.is_ascii_digit())
                });
            if !valid {
                fail("appVersion", "Must look like 1.2.3.");
            }
        }
        if self.build_number.is_some_and(|b| b < 1) {
            fail("buildNumber", "Must be at least 1.");
        }
        if let Some(platform) = &self.platform
            && platform != "ios"
            && platform != "android"
        {
            fail("platform", "Must be one of ios, android.");
        }
        if let Some(device_token) = &self.device_token
            && (device_token.is_empty() || device_token.chars().count() > 4096)
        {
            fail("deviceToken", "Must be 1 to 4096 characters.");
        }
        if !fields.is_empty() {
            return Err(ApiError::Validation(fields));
        }
        Ok((
            refresh_token.unwrap_or_default(),
            DeviceInfo {
                device_token: self.device_token,
                platform: self.platform,
                app_version: self.app_version,
                build_number: self.build_number.map(|b| b as u64),
                user_agent: None,
            },
        ))
    }
}

async fn refresh(app: &impl SmsContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let body: RefreshBody = http::json_body(req)?;
    let (refresh_token, mut device) = body.validate()?;
    device.user_agent = user_agent(req);
    let minimum = match device.platform.as_deref() {
        Some("ios") => app.core().config.min_build_ios,
        Some("android") => app.core().config.min_build_android,
        _ => None,
    };
    if let (Some(minimum), Some(build)) = (minimum, device.build_number)
        && build < u64::from(minimum)
    {
        return Err(ApiError::UpgradeRequired);
    }
    let session_id = SessionId::parse(id).ok_or(ApiError::InvalidUuid)?;
    let tokens = sessions::refresh(app.core(), session_id, &refresh_token, device).await?;
    Ok(http::ok(tokens))
}

async fn list(app: &impl SmsContext, req: &Request, uuid: &str) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    let owner = UserId::parse(uuid).ok_or(ApiError::InvalidUserUuid)?;
    let listed = sessions::list(app.core(), &principal, owner).await?;
    let items: Vec<_> = listed.iter().map(views::listed_session).collect();
    Ok(http::list(items, views::total(listed.len())))
}

async fn end_others(
    app: &impl SmsContext,
    req: &Request,
    uuid: &str,
) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    let owner = UserId::parse(uuid).ok_or(ApiError::InvalidUserUuid)?;
    sessions::end_other_sessions(app.core(), &principal, owner).await?;
    Ok(http::no_content())
}

fn jwks(app: &impl SmsContext) -> Response {
    let mut response = http::json_response(StatusCode::OK, &app.core().jwt.jwks());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

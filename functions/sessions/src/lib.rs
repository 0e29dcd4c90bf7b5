//! Route group `sessions`: login, 2FA verification, logout, refresh and the JWKS.

use lambda_http::Request;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use shared::http::{self, Response};
use shared::ids::SessionId;
use shared::sessions::{self, DeviceInfo, LoginOutcome};
use shared::{Access, ApiError, App};

pub async fn handle(app: &App, req: Request) -> Response {
    let mut response = http::respond(route(app, req).await);
    // API.md: no answer may be cached, tokens and presigned URLs least of all. The JWKS sets
    // its own policy.
    response
        .headers_mut()
        .entry(lambda_http::http::header::CACHE_CONTROL)
        .or_insert(lambda_http::http::HeaderValue::from_static("no-store"));
    response
}

async fn route(app: &App, req: Request) -> Result<Response, ApiError> {
    let (method, segments) = http::route(&req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segments.as_slice()) {
        (Method::POST, ["users", "sessions"]) => login(app, &req).await,
        (Method::POST, ["users", "sessions", "verify"]) => verify(app, &req).await,
        (Method::DELETE, ["users", "sessions", id]) => logout(app, &req, id).await,
        (Method::PUT, ["users", "sessions", id, "refresh"]) => refresh(app, &req, id).await,
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

async fn login(app: &App, req: &Request) -> Result<Response, ApiError> {
    let body: LoginBody = http::json_body(req)?;
    match sessions::login(app, body.email, body.password).await? {
        LoginOutcome::Complete { tokens, user } => Ok(http::data(
            StatusCode::CREATED,
            sessions::login_body(&tokens, &user),
        )),
        LoginOutcome::TwoFactorRequired { user, session } => {
            shared::two_factor::send_login_code(app, &user, &session).await?;
            let token = sessions::two_factor_token(app, &user, &session);
            Ok(http::data(
                StatusCode::CREATED,
                json!({
                    "token": token,
                    "sessionUUID": session.id,
                    "twoFactorRequired": true,
                }),
            ))
        }
    }
}

async fn verify(app: &App, req: &Request) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::FullOrTwoFactor).await?;
    let body: shared::two_factor::CodeBody = http::json_body(req)?;
    let code = body.code().ok_or(ApiError::CodeRequired)?;
    let body = shared::two_factor::verify(app, &principal, code).await?;
    Ok(http::data(StatusCode::CREATED, body))
}

async fn logout(app: &App, req: &Request, id: &str) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::Full).await?;
    let session_id = SessionId::parse(id).ok_or(ApiError::SessionIdDoesNotExist)?;
    sessions::logout(app, &principal.user, session_id).await?;
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
            && (device_token.is_empty() || device_token.len() > 4096)
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
            },
        ))
    }
}

async fn refresh(app: &App, req: &Request, id: &str) -> Result<Response, ApiError> {
    let body: RefreshBody = http::json_body(req)?;
    let (refresh_token, device) = body.validate()?;
    let minimum = match device.platform.as_deref() {
        Some("ios") => app.config.min_build_ios,
        Some("android") => app.config.min_build_android,
        _ => None,
    };
    if let (Some(minimum), Some(build)) = (minimum, device.build_number)
        && build < u64::from(minimum)
    {
        return Err(ApiError::UpgradeRequired);
    }
    let session_id = SessionId::parse(id).ok_or(ApiError::InvalidUuid)?;
    let tokens = sessions::refresh(app, session_id, &refresh_token, device).await?;
    Ok(http::ok(tokens))
}

fn jwks(app: &App) -> Response {
    let mut response = http::json_response(StatusCode::OK, &app.jwt.jwks());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

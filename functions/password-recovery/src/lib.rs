//! Route group `password-recovery`: mail a recovery link, check its token, reset the password.

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use shared::email::Email;
use shared::http::{self, Response};
use shared::password::Password;
use shared::{ApiError, App, clock, recovery};

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
        (Method::POST, ["users", "recover-password"]) => start(app, &req).await,
        (Method::GET, ["users", "recover-password", "verify", token]) => check(app, token).await,
        (Method::POST, ["users", "recover-password", "reset-password"]) => reset(app, &req).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    email: Option<String>,
}

async fn start(app: &App, req: &Request) -> Result<Response, ApiError> {
    let body: StartBody = http::json_body(req)?;
    let email = body
        .email
        .and_then(|email| Email::parse(&email).ok())
        .ok_or(ApiError::ValidEmailRequired)?;
    recovery::start(app, &email).await?;
    Ok(http::data(StatusCode::CREATED, json!({})))
}

async fn check(app: &App, token: &str) -> Result<Response, ApiError> {
    let expires_at = recovery::check(app, token).await?;
    Ok(http::ok(json!({
        "valid": true,
        "expiresAt": clock::format(expires_at),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: Option<String>,
    password: Option<String>,
}

async fn reset(app: &App, req: &Request) -> Result<Response, ApiError> {
    let body: ResetBody = http::json_body(req)?;
    let token = body
        .token
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::TokenRequired)?;
    let password = body.password.ok_or(ApiError::PasswordRequired)?;
    let password =
        Password::parse(&password).map_err(|message| ApiError::field("password", message))?;
    recovery::reset(app, &token, &password).await?;
    Ok(http::data(StatusCode::CREATED, json!({})))
}

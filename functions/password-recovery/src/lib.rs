//! Route group `password-recovery`: mail a recovery link, check its token, reset the password.

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use shared::domain::clock;
use shared::domain::email::Email;
use shared::http;
use shared::http::{Response, Route};
use shared::security::password::Password;
use shared::service::recovery;
use shared::{ApiError, MailContext};

pub async fn handle(app: &impl MailContext, req: Request) -> Response {
    http::serve("password-recovery", req, |req, path| route(app, req, path)).await
}

async fn route(app: &impl MailContext, req: Request, path: Route) -> Result<Response, ApiError> {
    match (path.method.clone(), path.segments().as_slice()) {
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

async fn start(app: &impl MailContext, req: &Request) -> Result<Response, ApiError> {
    let body: StartBody = http::json_body(req)?;
    let email = body
        .email
        .and_then(|email| Email::parse(&email).ok())
        .ok_or(ApiError::ValidEmailRequired)?;
    recovery::start(app.core(), app.mailer(), &email).await?;
    Ok(http::data(StatusCode::CREATED, json!({})))
}

async fn check(app: &impl MailContext, token: &str) -> Result<Response, ApiError> {
    let expires_at = recovery::check(app.core(), token).await?;
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

async fn reset(app: &impl MailContext, req: &Request) -> Result<Response, ApiError> {
    let body: ResetBody = http::json_body(req)?;
    let token = body
        .token
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::TokenRequired)?;
    let password = body.password.ok_or(ApiError::PasswordRequired)?;
    let password =
        Password::parse_new(&password).map_err(|message| ApiError::field("password", message))?;
    recovery::reset(app.core(), app.mailer(), &token, &password).await?;
    Ok(http::data(StatusCode::CREATED, json!({})))
}

//! Route group `email-verification`: mail a verification link, and the link itself.

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use serde_json::json;
use shared::http::{self, Response};
use shared::{Access, ApiError, App, verification};

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
        (Method::POST, ["users", "verify-email"]) => start(app, &req).await,
        (Method::GET, ["users", "verify-email", email]) => verify(app, &req, email).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

/// An inactive user's access token is already refused by `authenticate` (401), so the seed's
/// 400 "Cannot verify email for inactive user." comes only from the link.
async fn start(app: &App, req: &Request) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::Full).await?;
    verification::send_verification_email(app, &principal.user).await?;
    Ok(http::data(StatusCode::CREATED, json!({})))
}

async fn verify(app: &App, req: &Request, email: &str) -> Result<Response, ApiError> {
    let token = http::query(req).remove("token").unwrap_or_default();
    let user = verification::verify(app, email, &token).await?;
    Ok(http::ok(user.view()))
}

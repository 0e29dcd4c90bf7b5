//! Route group `email-verification`: mail a verification link, and the link itself.

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use serde_json::json;
use shared::http;
use shared::http::views;
use shared::http::{Response, Route};
use shared::service::verification;
use shared::{Access, ApiError, MailContext};

pub async fn handle(app: &impl MailContext, req: Request) -> Response {
    http::serve("email-verification", req, |req, path| route(app, req, path)).await
}

async fn route(app: &impl MailContext, req: Request, path: Route) -> Result<Response, ApiError> {
    match (path.method.clone(), path.segments().as_slice()) {
        (Method::POST, ["users", "verify-email"]) => start(app, &req).await,
        (Method::GET, ["users", "verify-email", email]) => verify(app, &req, email).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

/// An inactive user's access token is already refused by `authenticate` (401), so the seed's
/// 400 "Cannot verify email for inactive user." comes only from the link.
async fn start(app: &impl MailContext, req: &Request) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    verification::send_verification_email(app.core(), app.mailer(), &principal.user).await?;
    Ok(http::data(StatusCode::CREATED, json!({})))
}

async fn verify(app: &impl MailContext, req: &Request, email: &str) -> Result<Response, ApiError> {
    let token = http::query(req).remove("token").unwrap_or_default();
    let user = verification::verify(app.core(), email, &token).await?;
    Ok(http::ok(views::user(&user)))
}

//! Route group `diagnostic-reports`: create a report record with a presigned upload URL, and
//! list a user's reports with presigned download URLs.

use lambda_http::Request;
use lambda_http::http::Method;
use serde::Deserialize;
use shared::http::{self, Response};
use shared::ids::UserId;
use shared::reports::{self, ListQuery, NewReport};
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
        (Method::POST, ["users", "diagnostic-reports"]) => create(app, &req).await,
        (Method::GET, ["users", id, "diagnostic-reports"]) => list(app, &req, id).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    file_name: Option<String>,
    content_type: Option<String>,
    description: Option<String>,
}

async fn create(app: &App, req: &Request) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::Full).await?;
    let body: CreateBody = http::json_body(req)?;
    let new = NewReport::parse(
        body.file_name.as_deref(),
        body.content_type.as_deref(),
        body.description.as_deref(),
    )?;
    let report = reports::create(app, principal.user.id, new).await?;
    Ok(http::created(report))
}

async fn list(app: &App, req: &Request, id: &str) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::Full).await?;
    let owner = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    let query = ListQuery::parse(&http::query(req))?;
    let (items, meta) = reports::list(app, &principal.user, owner, &query).await?;
    Ok(http::list(items, meta))
}

//! Route group `diagnostic-reports`: create a report record with a presigned upload URL, and
//! list a user's reports with presigned download URLs.

use lambda_http::Request;
use lambda_http::http::Method;
use serde::Deserialize;
use shared::domain::ids::UserId;
use shared::domain::report::NewReport;
use shared::http;
use shared::http::views;
use shared::http::{Response, Route};
use shared::service::reports;
use shared::service::reports::ListQuery;
use shared::{Access, ApiError, ReportContext};

pub async fn handle(app: &impl ReportContext, req: Request) -> Response {
    http::serve("diagnostic-reports", req, |req, path| route(app, req, path)).await
}

async fn route(app: &impl ReportContext, req: Request, path: Route) -> Result<Response, ApiError> {
    match (path.method.clone(), path.segments().as_slice()) {
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
    size: Option<i64>,
}

async fn create(app: &impl ReportContext, req: &Request) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    let body: CreateBody = http::json_body(req)?;
    let new = NewReport::parse(
        body.file_name.as_deref(),
        body.content_type.as_deref(),
        body.description.as_deref(),
        body.size,
    )?;
    let report = reports::create(app.core(), app.report_storage(), principal.user.id, new).await?;
    Ok(http::created(views::created_report(&report)))
}

async fn list(app: &impl ReportContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    let owner = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    let query = ListQuery::parse(&http::query(req))?;
    let page = reports::list(
        app.core(),
        app.report_storage(),
        &principal.user,
        owner,
        &query,
    )
    .await?;
    let items: Vec<_> = page.items.iter().map(views::listed_report).collect();
    Ok(http::list(items, views::meta(&page)))
}

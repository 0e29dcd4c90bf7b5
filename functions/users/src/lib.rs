//! Route group `users`: registration, profile reads and changes, soft delete, roles, and the
//! admin listing. Also the catch-all: unknown routes answer 404 here.

use lambda_http::Request;
use lambda_http::http::Method;
use serde::Deserialize;
use shared::domain::email::Email;
use shared::domain::ids::UserId;
use shared::domain::user::parse_name;
use shared::http;
use shared::http::views;
use shared::http::{Response, Route};
use shared::security::password::Password;
use shared::service::security_events;
use shared::service::sessions;
use shared::service::users;
use shared::service::users::NewUser;
use shared::{Access, ApiError, MailContext};

mod list;
mod profile;
mod roles;

pub async fn handle(app: &impl MailContext, req: Request) -> Response {
    http::serve("users", req, |req, path| route(app, req, path)).await
}

async fn route(app: &impl MailContext, req: Request, path: Route) -> Result<Response, ApiError> {
    // A method a path does not take is an unknown route, as API Gateway sees it: 404.
    match (path.method.clone(), path.segments().as_slice()) {
        (Method::GET, ["users"]) => list::list(app, &req).await,
        (Method::POST, ["users"]) => register(app, &req).await,
        (Method::GET, ["users", "count"]) => list::count(app, &req).await,
        (Method::GET, ["users", id]) => get(app, &req, id).await,
        (Method::PATCH, ["users", id]) => profile::patch(app, &req, id).await,
        (Method::DELETE, ["users", id]) => profile::delete(app, &req, id).await,
        (Method::PUT, ["users", id, "roles"]) => roles::put(app, &req, id).await,
        (Method::GET, ["users", id, "security-events"]) => security_events(app, &req, id).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RegisterBody {
    email: Option<String>,
    password: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    full_name: Option<String>,
    marketing_opt_in: Option<bool>,
    /// Deprecated in the seed: accepted and ignored (registering records agreement now), but
    /// still the seed's string: another type is a field error like any other.
    #[allow(dead_code)]
    tos_agreed_to_at: Option<String>,
}

async fn register(app: &impl MailContext, req: &Request) -> Result<Response, ApiError> {
    let body: RegisterBody = http::json_body(req)?;
    let email = body
        .email
        .filter(|e| !e.trim().is_empty())
        .ok_or(ApiError::EmailRequired)?;
    let password = body
        .password
        .filter(|p| !p.is_empty())
        .ok_or(ApiError::PasswordRequired)?;
    let mut fields = shared::error::FieldErrors::new();
    let mut check = |name: &str, result: Result<(), String>| {
        if let Err(message) = result {
            fields.entry(name.to_owned()).or_default().push(message);
        }
    };
    let email = Email::parse(&email);
    check(
        "email",
        email.as_ref().map(|_| ()).map_err(|m| m.to_string()),
    );
    let password = Password::parse_new(&password);
    check(
        "password",
        password.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let mut names = [
        ("firstName", body.first_name),
        ("lastName", body.last_name),
        ("fullName", body.full_name),
    ]
    .map(|(field, value)| {
        let parsed = value.map(|v| parse_name(&v)).transpose();
        check(
            field,
            parsed.as_ref().map(|_| ()).map_err(|m| m.to_string()),
        );
        parsed.ok().flatten()
    });
    if !fields.is_empty() {
        return Err(ApiError::Validation(fields));
    }
    let (Ok(email), Ok(password)) = (email, password) else {
        unreachable!("field errors were returned above");
    };
    let user = users::register(
        app.core(),
        NewUser {
            email,
            password,
            first_name: names[0].take(),
            last_name: names[1].take(),
            full_name: names[2].take(),
            marketing_opt_in: body.marketing_opt_in.unwrap_or(false),
        },
    )
    .await?;
    let tokens = sessions::open(app.core(), &user).await?;
    Ok(http::with_etag(
        http::ok(views::registration(&tokens, &user)),
        user.version,
    ))
}

async fn get(app: &impl MailContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    let id = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    if principal.user.id != id && !principal.user.is_admin() {
        return Err(ApiError::NoAccess);
    }
    // Oneself was read with the session (and is active, hence live): no second read.
    let user = if principal.user.id == id {
        principal.user
    } else {
        users::find_live(app.core(), id)
            .await?
            .ok_or(ApiError::UserNotFound)?
    };
    Ok(http::with_etag(http::ok(views::user(&user)), user.version))
}

async fn security_events(
    app: &impl MailContext,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    let owner = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    let query = security_events::ListQuery::parse(&http::query(req))?;
    let page = security_events::list(app.core(), &principal.user, owner, &query).await?;
    let items: Vec<_> = page.items.iter().map(views::security_event).collect();
    Ok(http::list(items, views::meta(&page)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_deprecated_tos_date_is_ignored_but_must_be_a_string() {
        let body =
            |value| serde_json::from_value::<RegisterBody>(json!({ "tosAgreedToAt": value }));

        assert!(body(json!("2020-01-01T00:00:00Z")).is_ok());
        assert!(body(json!(null)).is_ok());
        assert!(body(json!(5)).is_err());
        assert!(body(json!({})).is_err());
    }
}

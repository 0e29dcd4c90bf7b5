//! Route group `users`: registration, profile reads and changes, soft delete, roles, and the
//! admin listing. Also the catch-all: unknown routes answer 404 here.

use lambda_http::Request;
use lambda_http::http::{HeaderValue, Method, header};
use serde::Deserialize;
use serde_json::json;
use shared::email::Email;
use shared::http::{self, Response};
use shared::ids::UserId;
use shared::password::Password;
use shared::user::{User, parse_name};
use shared::users::{self, NewUser};
use shared::{Access, ApiError, App, sessions};

mod list;
mod profile;
mod roles;

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
    // A method a path does not take is an unknown route, as API Gateway sees it: 404.
    match (method, segments.as_slice()) {
        (Method::GET, ["users"]) => list::list(app, &req).await,
        (Method::POST, ["users"]) => register(app, &req).await,
        (Method::GET, ["users", "count"]) => list::count(app, &req).await,
        (Method::GET, ["users", id]) => get(app, &req, id).await,
        (Method::PATCH, ["users", id]) => profile::patch(app, &req, id).await,
        (Method::DELETE, ["users", id]) => profile::delete(app, &req, id).await,
        (Method::PUT, ["users", id, "roles"]) => roles::put(app, &req, id).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

/// The user's version as an ETag.
pub(crate) fn with_etag(mut response: Response, user: &User) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", user.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
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

async fn register(app: &App, req: &Request) -> Result<Response, ApiError> {
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
    let password = Password::parse(&password);
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
        app,
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
    let tokens = sessions::open(app, &user).await?;
    let body = json!({
        "user": user.view(),
        "token": tokens.token,
        "refreshToken": tokens.refresh_token,
        "sessionUUID": tokens.session_uuid,
        "expiresIn": tokens.expires_in,
    });
    Ok(with_etag(http::ok(body), &user))
}

async fn get(app: &App, req: &Request, id: &str) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::Full).await?;
    let id = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    if principal.user.id != id && !principal.user.is_admin() {
        return Err(ApiError::NoAccess);
    }
    let user = users::find_live(app, id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    Ok(with_etag(http::ok(user.view()), &user))
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! `PUT /users/{uuid}/roles`: a csrAdmin replaces a user's roles. Its seed messages lack the
//! final period the same words have elsewhere.

use lambda_http::Request;
use serde::Deserialize;
use serde_json::Value;
use shared::domain::ids::UserId;
use shared::domain::user::Role;
use shared::http;
use shared::http::Response;
use shared::http::views;
use shared::service::users;
use shared::{Access, ApiError, MailContext};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesBody {
    roles: Option<Value>,
}

pub async fn put(app: &impl MailContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let id = UserId::parse(id).ok_or(ApiError::InvalidUserUuidForRoles)?;
    let principal = app.core().authenticate(req, Access::Full).await?;
    if !principal.user.is_admin() {
        return Err(ApiError::UpdateAnotherUserRoles);
    }
    let body: RolesBody = http::json_body(req)?;
    let names = role_names(body.roles)?;
    if users::find_live(app.core(), id).await?.is_none() {
        return Err(ApiError::UserNotFoundForRoles);
    }
    let roles = names
        .iter()
        .map(|name| Role::parse(name).ok_or(ApiError::RoleNotFound))
        .collect::<Result<Vec<Role>, ApiError>>()?;
    let user = users::update_by(app.core(), id, None, &principal.cause(), |user| {
        user.set_roles(roles.iter().copied());
        Ok(())
    })
    .await
    .map_err(|error| match error {
        ApiError::UserNotFound => ApiError::UserNotFoundForRoles,
        other => other,
    })?;
    Ok(http::with_etag(http::ok(views::user(&user)), user.version))
}

/// `roles` must be an array of strings (possibly empty, which removes every role).
fn role_names(roles: Option<Value>) -> Result<Vec<String>, ApiError> {
    let invalid = || ApiError::field("roles", "Must be an array of role names.");
    match roles {
        None | Some(Value::Null) => Err(ApiError::field("roles", "Is required.")),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(name) => Ok(name),
                _ => Err(invalid()),
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}

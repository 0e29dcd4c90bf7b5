//! `PATCH /users/{uuid}` and `DELETE /users/{uuid}`: profile changes and soft delete, by the
//! user or a csrAdmin.

use lambda_http::Request;
use lambda_http::http::HeaderMap;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use shared::domain::email::Email;
use shared::domain::ids::UserId;
use shared::domain::mail::Mail;
use shared::domain::user::{Status, parse_name};
use shared::error::FieldErrors;
use shared::http;
use shared::http::Response;
use shared::http::views;
use shared::security::password::Password;
use shared::service::users::ProfileChange;
use shared::service::verification;
use shared::service::{notices, users};
use shared::{Access, ApiError, MailContext};

/// Every field is optional; names may be `null` to clear them. `roles` and `twoFactorAuth` are
/// declared only to refuse them with a message that says where they are changed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    #[serde(default, deserialize_with = "present")]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    full_name: Option<Option<String>>,
    email: Option<String>,
    marketing_opt_in: Option<bool>,
    tos_agreed: Option<bool>,
    /// Deprecated in the seed: accepted and ignored, but still the seed's string.
    #[allow(dead_code)]
    tos_agreed_to_at: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
    status: Option<String>,
    admin: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    roles: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "present")]
    two_factor_auth: Option<IgnoredAny>,
}

/// `Some` whenever the field is in the body, even as `null`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl PatchBody {
    /// The change, and the current password if one was sent; field errors otherwise.
    fn validate(self) -> Result<(ProfileChange, Option<String>), ApiError> {
        let mut fields = FieldErrors::new();
        let mut fail = |name: &str, message: String| {
            fields.entry(name.to_owned()).or_default().push(message);
        };
        if self.roles.is_some() {
            fail(
                "roles",
                "Not a profile field: roles are set with PUT /users/{uuid}/roles.".into(),
            );
        }
        if self.two_factor_auth.is_some() {
            fail(
                "twoFactorAuth",
                "Not a profile field: two-factor auth is set up and removed through its own routes."
                    .into(),
            );
        }
        let mut name = |field: &str, value: Option<Option<String>>| match value {
            Some(Some(value)) => match parse_name(&value) {
                Ok(name) => Some(Some(name)),
                Err(message) => {
                    fail(field, message.to_owned());
                    None
                }
            },
            other => other,
        };
        let first_name = name("firstName", self.first_name);
        let last_name = name("lastName", self.last_name);
        let full_name = name("fullName", self.full_name);
        let email = self.email.and_then(|email| {
            Email::parse(&email)
                .map_err(|message| fail("email", message.to_owned()))
                .ok()
        });
        let password = self.password.and_then(|password| {
            Password::parse_new(&password)
                .map_err(|message| fail("password", message))
                .ok()
        });
        let status = self.status.and_then(|status| {
            let parsed = Status::parse_visible(&status);
            if parsed.is_none() {
                fail("status", "Must be one of active, inactive.".into());
            }
            parsed
        });
        if !fields.is_empty() {
            return Err(ApiError::Validation(fields));
        }
        let change = ProfileChange {
            first_name,
            last_name,
            full_name,
            email,
            marketing_opt_in: self.marketing_opt_in,
            tos_agreed: self.tos_agreed == Some(true),
            password,
            status,
            admin: self.admin,
        };
        Ok((change, self.current_password))
    }
}

pub async fn patch(app: &impl MailContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let id = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    let principal = app.core().authenticate(req, Access::Full).await?;
    let is_self = principal.user.id == id;
    let is_admin = principal.user.is_admin();
    if !is_self && !is_admin {
        return Err(ApiError::UpdateAnotherUser);
    }
    if !is_self && users::find_live(app.core(), id).await?.is_none() {
        return Err(ApiError::UserNotFound);
    }
    // The two refusals of the seed come before any other rule of the body, so they look at
    // its keys alone.
    let raw = http::json_object(req)?;
    if !is_self && raw.contains_key("password") {
        return Err(ApiError::AdminCannotSetPassword);
    }
    if !is_admin && (raw.contains_key("status") || raw.contains_key("admin")) {
        return Err(ApiError::UpdateAnotherUser);
    }
    let body: PatchBody = http::from_object(raw)?;
    let (change, current_password) = body.validate()?;
    let current_password = current_password.filter(|p| !p.is_empty());
    // Re-authentication: a stolen access token alone must not take the account over, by a
    // new password or by moving the email (and with it password recovery) elsewhere.
    let moves_own_email = is_self
        && change
            .email
            .as_ref()
            .is_some_and(|email| email.normalized() != principal.user.email_key());
    let confirm = if change.password.is_some() {
        Some(current_password.ok_or(ApiError::CurrentPasswordRequired)?)
    } else if moves_own_email {
        Some(current_password.ok_or_else(|| ApiError::field("currentPassword", "Is required."))?)
    } else {
        None
    };
    if let Some(current) = confirm {
        users::confirm_password_by(app.core(), &principal.user, &current, &principal.cause())
            .await?;
    }
    let password_changed = change.password.is_some();
    let if_match = if_match(req.headers());
    let changed = users::change_profile(
        app.core(),
        id,
        change,
        &principal.cause(),
        if_match.as_deref(),
    )
    .await?;
    // The change is saved: a failed mail is logged, not answered with a 5xx the client would
    // retry. `POST /users/verify-email` sends another link.
    if changed.email_changed
        && let Err(error) =
            verification::send_verification_email(app.core(), app.mailer(), &changed.user).await
    {
        tracing::error!(user = %changed.user.id, %error, "verification mail after an email change failed");
    }
    if let Some(old_address) = &changed.moved_from {
        notices::send(
            app.mailer(),
            &changed.user,
            Mail::email_changed(old_address),
        )
        .await;
    }
    if password_changed {
        let notice = Mail::password_changed(&changed.user.email);
        notices::send(app.mailer(), &changed.user, notice).await;
    }
    Ok(http::with_etag(
        http::ok(views::user(&changed.user)),
        changed.user.version,
    ))
}

/// The versions `If-Match` accepts: `None` without the header or with `*`. Quoted, weak and
/// bare numbers are read; anything else matches no version.
fn if_match(headers: &HeaderMap) -> Option<Vec<u64>> {
    let value = http::header(headers, "if-match")?.trim();
    if value == "*" {
        return None;
    }
    Some(
        value
            .split(',')
            .filter_map(|tag| {
                let tag = tag.trim();
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.trim_matches('"').parse().ok()
            })
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    password: Option<String>,
}

pub async fn delete(app: &impl MailContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let id = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    let principal = app.core().authenticate(req, Access::Full).await?;
    if principal.user.id != id && !principal.user.is_admin() {
        return Err(ApiError::NoAccess);
    }
    let body: DeleteBody = http::json_body(req)?;
    let password = body
        .password
        .filter(|p| !p.is_empty())
        .ok_or(ApiError::PasswordRequired)?;
    // The caller re-authenticates: a stolen access token alone cannot delete an account.
    users::confirm_password(app.core(), &principal.user, &password).await?;
    users::soft_delete(app.core(), id, &principal.cause()).await?;
    Ok(http::ok(json!({ "uuid": id, "deleted": true })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    fn with_if_match(value: &str) -> Option<Vec<u64>> {
        let mut headers = HeaderMap::new();
        headers.insert("if-match", HeaderValue::from_str(value).unwrap());
        if_match(&headers)
    }

    #[test]
    fn if_match_reads_quoted_weak_bare_and_listed_versions() {
        assert_eq!(if_match(&HeaderMap::new()), None);
        assert_eq!(with_if_match("*"), None);
        assert_eq!(with_if_match("\"7\""), Some(vec![7]));
        assert_eq!(with_if_match("7"), Some(vec![7]));
        assert_eq!(with_if_match("W/\"7\""), Some(vec![7]));
        assert_eq!(with_if_match("\"3\", \"4\""), Some(vec![3, 4]));
        assert_eq!(with_if_match("\"abc\""), Some(vec![]));
    }

    #[test]
    fn the_deprecated_tos_date_is_ignored_but_must_be_a_string() {
        let body = |value| serde_json::from_value::<PatchBody>(json!({ "tosAgreedToAt": value }));

        assert!(body(json!("2020-01-01T00:00:00Z")).is_ok());
        assert!(body(json!(null)).is_ok());
        assert!(body(json!(5)).is_err());
    }
}

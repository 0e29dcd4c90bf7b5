//! Route group `two-factor`: enrolling a pending number, resending a code, and removing 2FA
//! (one's own, or another user's as a csrAdmin); the authenticator app (enrol, activate,
//! remove) and recovery codes. A number's activation and the 2FA half of login go through
//! `POST /users/sessions/verify` in the `sessions` group.

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use serde::Deserialize;
use shared::domain::ids::UserId;
use shared::domain::phone::{CountryCode, NationalNumber, PhoneNumber};
use shared::error::FieldErrors;
use shared::http;
use shared::http::views;
use shared::http::{Response, Route};
use shared::service::{totp, two_factor, users};
use shared::{Access, ApiError, MailContext, Principal, SmsContext};

/// The group texts codes and mails the notice after a second factor is removed.
pub trait TwoFactorContext: SmsContext + MailContext {}

impl<T: SmsContext + MailContext> TwoFactorContext for T {}

pub async fn handle(app: &impl TwoFactorContext, req: Request) -> Response {
    http::serve("two-factor", req, |req, path| route(app, req, path)).await
}

async fn route(
    app: &impl TwoFactorContext,
    req: Request,
    path: Route,
) -> Result<Response, ApiError> {
    match (path.method.clone(), path.segments().as_slice()) {
        (Method::POST, ["users", id, "pending-two-factor-auth"]) => enrol(app, &req, id).await,
        (Method::GET, ["users", "two-factor-auth", "code"]) => resend(app, &req).await,
        (Method::DELETE, ["users", "two-factor-auth"]) => remove_own(app, &req).await,
        (Method::DELETE, ["users", id, "two-factor-auth"]) => remove_for(app, &req, id).await,
        (Method::POST, ["users", id, "totp"]) => totp_enrol(app, &req, id).await,
        (Method::POST, ["users", id, "totp", "verify"]) => totp_activate(app, &req, id).await,
        (Method::DELETE, ["users", id, "totp"]) => totp_remove(app, &req, id).await,
        (Method::POST, ["users", id, "recovery-codes"]) => recovery_codes(app, &req, id).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnrolBody {
    mobile_number: Option<String>,
    mobile_country_code: Option<i64>,
    /// Needed only to replace a verified number.
    current_password: Option<String>,
}

impl EnrolBody {
    /// The number, with `currentPassword` required when `needs_password`; every field's
    /// errors at once.
    fn phone(&self, needs_password: bool) -> Result<PhoneNumber, ApiError> {
        let mut fields = FieldErrors::new();
        let mut field = |name: &str, result: Result<(), &str>| {
            if let Err(message) = result {
                fields
                    .entry(name.to_owned())
                    .or_default()
                    .push(message.to_owned());
            }
        };
        let national = self
            .mobile_number
            .as_deref()
            .ok_or("Is required.")
            .and_then(NationalNumber::parse);
        field(
            "mobileNumber",
            national.as_ref().map(|_| ()).map_err(|m| *m),
        );
        let country = self
            .mobile_country_code
            .ok_or("Is required.")
            .and_then(CountryCode::parse);
        field("mobileCountryCode", country.map(|_| ()));
        let password_given = self
            .current_password
            .as_deref()
            .is_some_and(|p| !p.is_empty());
        if needs_password && !password_given {
            field("currentPassword", Err("Is required."));
        }
        match (national, country) {
            (Ok(national), Ok(country)) if fields.is_empty() => {
                Ok(PhoneNumber::new(country, &national))
            }
            _ => Err(ApiError::Validation(fields)),
        }
    }
}

/// `POST /users/{uuid}/pending-two-factor-auth`: self only. 201 with the user, now showing
/// `twoFactorAuth.pending: true`. Replacing a verified number needs `currentPassword`.
async fn enrol(app: &impl TwoFactorContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let principal = self_only(app, req, id).await?;
    let body: EnrolBody = http::json_body(req)?;
    let replacing = principal.user.mobile.is_some();
    let phone = body.phone(replacing)?;
    if replacing {
        users::confirm_current_password(
            app.core(),
            &principal.user,
            body.current_password.as_deref(),
        )
        .await?;
    }
    let user = two_factor::enrol(app.core(), app.sms(), &principal.user, &phone).await?;
    Ok(http::data(StatusCode::CREATED, views::user(&user)))
}

/// `GET /users/two-factor-auth/code?phoneNumber=+14155550123` (also `%2B14155550123`).
async fn resend(app: &impl TwoFactorContext, req: &Request) -> Result<Response, ApiError> {
    let principal = app
        .core()
        .authenticate(req, Access::FullOrTwoFactor)
        .await?;
    let requested = match http::query(req).get("phoneNumber").map(|n| n.trim()) {
        None | Some("") => None,
        Some(number) => Some(PhoneNumber::parse_e164(number).ok_or_else(|| {
            ApiError::field(
                "phoneNumber",
                "Must be an E.164 number such as +14155550123.",
            )
        })?),
    };
    two_factor::resend(app.core(), app.sms(), &principal.user, requested).await?;
    Ok(http::no_content())
}

/// `DELETE /users/two-factor-auth`, with a full or a `2fa` token.
async fn remove_own(app: &impl TwoFactorContext, req: &Request) -> Result<Response, ApiError> {
    let principal = app
        .core()
        .authenticate(req, Access::FullOrTwoFactor)
        .await?;
    let body: two_factor::CodeBody = http::json_body(req)?;
    two_factor::remove_own(app.core(), app.mailer(), &principal, body.code()).await?;
    Ok(http::no_content())
}

/// `DELETE /users/{uuid}/two-factor-auth`: csrAdmin only, even on one's own uuid. The role is
/// checked before the uuid, so a non-admin learns nothing about it.
async fn remove_for(
    app: &impl TwoFactorContext,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    if !principal.user.is_admin() {
        return Err(ApiError::DisableAnotherUsersTwoFactor);
    }
    let id = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    two_factor::remove_for(app.core(), app.mailer(), &principal, id).await?;
    Ok(http::no_content())
}

/// A full-scope caller acting on their own `{uuid}` (403 "No Access." on anyone else's).
async fn self_only(
    app: &impl TwoFactorContext,
    req: &Request,
    id: &str,
) -> Result<Principal, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    let id = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    if id != principal.user.id {
        return Err(ApiError::NoAccess);
    }
    Ok(principal)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PasswordBody {
    current_password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TotpCodeBody {
    code: Option<String>,
}

impl TotpCodeBody {
    /// The code, trimmed; `None` when missing or blank.
    fn code(&self) -> Option<&str> {
        self.code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }
}

/// `POST /users/{uuid}/totp`: 201 with the new app's secret, shown only here.
async fn totp_enrol(
    app: &impl TwoFactorContext,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let principal = self_only(app, req, id).await?;
    let body: PasswordBody = http::json_body(req)?;
    let enrolment = totp::enrol(app.core(), &principal, body.current_password.as_deref()).await?;
    Ok(http::data(
        StatusCode::CREATED,
        views::totp_enrolment(&enrolment),
    ))
}

/// `POST /users/{uuid}/totp/verify`: 200 with the user, now showing `twoFactorAuth.totp`.
async fn totp_activate(
    app: &impl TwoFactorContext,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let principal = self_only(app, req, id).await?;
    let body: TotpCodeBody = http::json_body(req)?;
    let code = body.code().ok_or(ApiError::CodeRequired)?;
    let user = totp::activate(app.core(), &principal, code).await?;
    Ok(http::ok(views::user(&user)))
}

/// `DELETE /users/{uuid}/totp`: one's own app with a code, or anyone's as a csrAdmin (a code
/// sent by a csrAdmin for another user is ignored).
async fn totp_remove(
    app: &impl TwoFactorContext,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    let target = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    if target != principal.user.id && !principal.user.is_admin() {
        return Err(ApiError::NoAccess);
    }
    let body: TotpCodeBody = http::json_body(req)?;
    totp::remove(app.core(), app.mailer(), &principal, target, body.code()).await?;
    Ok(http::no_content())
}

/// `POST /users/{uuid}/recovery-codes`: 201 with a new set of codes, shown only here.
async fn recovery_codes(
    app: &impl TwoFactorContext,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let principal = self_only(app, req, id).await?;
    let body: PasswordBody = http::json_body(req)?;
    let codes =
        totp::generate_recovery_codes(app.core(), &principal, body.current_password.as_deref())
            .await?;
    Ok(http::data(
        StatusCode::CREATED,
        views::recovery_codes(&codes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(body: serde_json::Value) -> Result<PhoneNumber, ApiError> {
        serde_json::from_value::<EnrolBody>(body)
            .unwrap()
            .phone(false)
    }

    #[test]
    fn replacing_a_verified_number_needs_the_current_password() {
        let body = serde_json::json!({"mobileNumber": "415 555 0123", "mobileCountryCode": 1});
        let parsed = serde_json::from_value::<EnrolBody>(body).unwrap();
        match parsed.phone(true) {
            Err(ApiError::Validation(fields)) => {
                assert_eq!(fields.keys().collect::<Vec<_>>(), ["currentPassword"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn enrolment_fields_are_required_and_checked_together() {
        match phone(serde_json::json!({})) {
            Err(ApiError::Validation(fields)) => {
                assert_eq!(fields["mobileNumber"], ["Is required."]);
                assert_eq!(fields["mobileCountryCode"], ["Is required."]);
            }
            other => panic!("{other:?}"),
        }
        match phone(serde_json::json!({"mobileNumber": "415-555-012a", "mobileCountryCode": 1000}))
        {
            Err(ApiError::Validation(fields)) => {
                assert!(fields.contains_key("mobileNumber"));
                assert_eq!(fields["mobileCountryCode"], ["Must be between 1 and 999."]);
            }
            other => panic!("{other:?}"),
        }
        let number =
            phone(serde_json::json!({"mobileNumber": "415 555 0123", "mobileCountryCode": 1}));
        assert_eq!(number.unwrap().as_str(), "+14155550123");
    }
}

//! Route group `two-factor`: enrolling a pending number, resending a code, and removing 2FA
//! (one's own, or another user's as a csrAdmin). Activation and the 2FA half of login go
//! through `POST /users/sessions/verify` in the `sessions` group.

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use serde::Deserialize;
use shared::error::FieldErrors;
use shared::http::{self, Response};
use shared::ids::UserId;
use shared::phone::{CountryCode, NationalNumber, PhoneNumber};
use shared::{Access, ApiError, App, two_factor};

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
        (Method::POST, ["users", id, "pending-two-factor-auth"]) => enrol(app, &req, id).await,
        (Method::GET, ["users", "two-factor-auth", "code"]) => resend(app, &req).await,
        (Method::DELETE, ["users", "two-factor-auth"]) => remove_own(app, &req).await,
        (Method::DELETE, ["users", id, "two-factor-auth"]) => remove_for(app, &req, id).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnrolBody {
    mobile_number: Option<String>,
    mobile_country_code: Option<i64>,
}

impl EnrolBody {
    fn phone(self) -> Result<PhoneNumber, ApiError> {
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
        match (national, country) {
            (Ok(national), Ok(country)) => Ok(PhoneNumber::new(country, &national)),
            _ => Err(ApiError::Validation(fields)),
        }
    }
}

/// `POST /users/{uuid}/pending-two-factor-auth`: self only. 201 with the user, now showing
/// `twoFactorAuth.pending: true`.
async fn enrol(app: &App, req: &Request, id: &str) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::Full).await?;
    let id = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    if id != principal.user.id {
        return Err(ApiError::NoAccess);
    }
    let body: EnrolBody = http::json_body(req)?;
    let phone = body.phone()?;
    let user = two_factor::enrol(app, &principal.user, &phone).await?;
    Ok(http::data(StatusCode::CREATED, user.view()))
}

/// `GET /users/two-factor-auth/code?phoneNumber=+14155550123` (also `%2B14155550123`).
async fn resend(app: &App, req: &Request) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::FullOrTwoFactor).await?;
    let requested = match http::query(req).get("phoneNumber").map(|n| n.trim()) {
        None | Some("") => None,
        Some(number) => Some(PhoneNumber::parse_e164(number).ok_or_else(|| {
            ApiError::field(
                "phoneNumber",
                "Must be an E.164 number such as +14155550123.",
            )
        })?),
    };
    two_factor::resend(app, &principal.user, requested).await?;
    Ok(http::no_content())
}

/// `DELETE /users/two-factor-auth`, with a full or a `2fa` token.
async fn remove_own(app: &App, req: &Request) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::FullOrTwoFactor).await?;
    let body: two_factor::CodeBody = http::json_body(req)?;
    two_factor::remove_own(app, &principal.user, body.code()).await?;
    Ok(http::no_content())
}

/// `DELETE /users/{uuid}/two-factor-auth`: csrAdmin only, even on one's own uuid. The role is
/// checked before the uuid, so a non-admin learns nothing about it.
async fn remove_for(app: &App, req: &Request, id: &str) -> Result<Response, ApiError> {
    let principal = app.authenticate(req, Access::Full).await?;
    if !principal.user.is_admin() {
        return Err(ApiError::DisableAnotherUsersTwoFactor);
    }
    let id = UserId::parse(id).ok_or(ApiError::InvalidUserUuid)?;
    two_factor::remove_for(app, id).await?;
    Ok(http::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(body: serde_json::Value) -> Result<PhoneNumber, ApiError> {
        serde_json::from_value::<EnrolBody>(body).unwrap().phone()
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

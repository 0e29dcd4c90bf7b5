//! Route group `passkeys`: registering, listing and removing passkeys, and logging in with
//! one (WebAuthn, discoverable credentials only).

use lambda_http::Request;
use lambda_http::http::Method;
use serde::Deserialize;
use serde_json::Value;
use shared::domain::ids::{CeremonyId, PasskeyId, UserId};
use shared::domain::passkey::DEFAULT_NAME;
use shared::error::FieldErrors;
use shared::http;
use shared::http::views;
use shared::http::{Response, Route};
use shared::service::passkeys;
use shared::{Access, ApiError, MailContext};

pub async fn handle(app: &impl MailContext, req: Request) -> Response {
    http::serve("passkeys", req, |req, path| route(app, req, path)).await
}

async fn route(app: &impl MailContext, req: Request, path: Route) -> Result<Response, ApiError> {
    match (path.method.clone(), path.segments().as_slice()) {
        (Method::POST, ["users", "sessions", "passkey-options"]) => login_options(app, &req).await,
        (Method::POST, ["users", "sessions", "passkey"]) => login(app, &req).await,
        (Method::POST, ["users", id, "passkeys", "registration-options"]) => {
            registration_options(app, &req, id).await
        }
        (Method::POST, ["users", id, "passkeys"]) => register(app, &req, id).await,
        (Method::GET, ["users", id, "passkeys"]) => list(app, &req, id).await,
        (Method::DELETE, ["users", id, "passkeys", passkey]) => {
            remove(app, &req, id, passkey).await
        }
        _ => Err(ApiError::RouteNotFound),
    }
}

fn user_id(id: &str) -> Result<UserId, ApiError> {
    UserId::parse(id).ok_or(ApiError::InvalidUserUuid)
}

/// The caller must be the user of the path (registration is "self" only).
fn only_self(principal: &shared::Principal, id: UserId) -> Result<(), ApiError> {
    if principal.user.id == id {
        Ok(())
    } else {
        Err(ApiError::NoAccess)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RegistrationOptionsBody {
    current_password: Option<String>,
}

async fn registration_options(
    app: &impl MailContext,
    req: &Request,
    id: &str,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let principal = app.core().authenticate(req, Access::Full).await?;
    only_self(&principal, id)?;
    let body: RegistrationOptionsBody = http::json_body(req)?;
    let options =
        passkeys::start_registration(app.core(), &principal, body.current_password.as_deref())
            .await?;
    Ok(http::ok(views::ceremony_options(&options)))
}

/// The answer to a ceremony: its uuid and the client's `PublicKeyCredential` JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CeremonyAnswer {
    #[serde(rename = "ceremonyUUID")]
    ceremony_uuid: Option<String>,
    credential: Option<serde_json::Map<String, Value>>,
    name: Option<String>,
}

impl CeremonyAnswer {
    /// Both fields present and the uuid well-formed, else field errors (with `more`'s).
    fn parse(self, mut fields: FieldErrors) -> Result<(CeremonyId, Value), ApiError> {
        let ceremony = match self.ceremony_uuid.as_deref() {
            None => {
                fields.insert("ceremonyUUID".into(), vec!["Is required.".into()]);
                None
            }
            Some(text) => {
                let parsed = CeremonyId::parse(text);
                if parsed.is_none() {
                    fields.insert("ceremonyUUID".into(), vec!["Must be a UUID.".into()]);
                }
                parsed
            }
        };
        if self.credential.is_none() {
            fields.insert("credential".into(), vec!["Is required.".into()]);
        }
        match (ceremony, self.credential) {
            (Some(ceremony), Some(credential)) if fields.is_empty() => {
                Ok((ceremony, Value::Object(credential)))
            }
            _ => Err(ApiError::Validation(fields)),
        }
    }
}

async fn register(app: &impl MailContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let principal = app.core().authenticate(req, Access::Full).await?;
    only_self(&principal, id)?;
    let mut body: CeremonyAnswer = http::json_body(req)?;
    let mut fields = FieldErrors::new();
    let name = match body.name.take() {
        None => DEFAULT_NAME.to_owned(),
        Some(name) => {
            let trimmed = name.trim();
            let length = trimmed.chars().count();
            if !(1..=64).contains(&length) || trimmed.chars().any(char::is_control) {
                fields.insert(
                    "name".into(),
                    vec!["Must be 1 to 64 characters, without control characters.".into()],
                );
            }
            trimmed.to_owned()
        }
    };
    let (ceremony, credential) = body.parse(fields)?;
    let passkey = passkeys::finish_registration(
        app.core(),
        app.mailer(),
        &principal,
        ceremony,
        credential,
        name,
    )
    .await?;
    Ok(http::created(views::passkey(&passkey)))
}

async fn list(app: &impl MailContext, req: &Request, id: &str) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let principal = app.core().authenticate(req, Access::Full).await?;
    let passkeys = passkeys::list(app.core(), &principal, id).await?;
    let items: Vec<Value> = passkeys.iter().map(views::passkey).collect();
    let total = items.len();
    Ok(http::list(items, serde_json::json!({ "total": total })))
}

async fn remove(
    app: &impl MailContext,
    req: &Request,
    id: &str,
    passkey: &str,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let principal = app.core().authenticate(req, Access::Full).await?;
    let passkey = PasskeyId::parse(passkey).ok_or(ApiError::InvalidUuid)?;
    passkeys::remove(app.core(), &principal, id, passkey).await?;
    Ok(http::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn login_options(app: &impl MailContext, req: &Request) -> Result<Response, ApiError> {
    let Empty {} = http::json_body(req)?;
    let options = passkeys::start_login(app.core()).await?;
    Ok(http::ok(views::ceremony_options(&options)))
}

async fn login(app: &impl MailContext, req: &Request) -> Result<Response, ApiError> {
    let body: CeremonyAnswer = http::json_body(req)?;
    let mut fields = FieldErrors::new();
    if body.name.is_some() {
        fields.insert("name".into(), vec!["Unknown field.".into()]);
    }
    let (ceremony, credential) = body.parse(fields)?;
    let (tokens, user) = passkeys::finish_login(app.core(), ceremony, credential).await?;
    Ok(http::created(views::login(&tokens, &user)))
}

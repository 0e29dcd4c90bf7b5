//! The one place domain values become response bodies (API.md's shapes). Services return
//! domain types; route groups answer with these.

use serde_json::{Value, json};

use crate::domain::clock;
use crate::domain::ids::SessionId;
use crate::domain::passkey::{CeremonyOptions, Passkey};
use crate::domain::report::{CreatedReport, ListedReport};
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::User;
use crate::service::paging::Page;
use crate::service::sessions::{ListedSession, Tokens};
use crate::service::totp::Enrolment;
use crate::service::two_factor::Verified;

/// The public user object: exactly these keys, never a secret.
pub fn user(user: &User) -> Value {
    let last4 = |number: &Option<String>| {
        number.as_deref().map(|n| {
            n.chars()
                .skip(n.chars().count().saturating_sub(4))
                .collect::<String>()
        })
    };
    json!({
        "uuid": user.id,
        "email": user.email,
        "emailVerified": user.email_verified,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "fullName": user.full_name,
        "status": user.status.as_str(),
        "roles": user.role_names(),
        "marketingOptIn": user.marketing_opt_in,
        "tosAgreedAt": user.tos_agreed_at.map(clock::format),
        "twoFactorAuth": {
            "enabled": user.two_factor_enabled(),
            "mobileNumberLast4": last4(&user.mobile).or_else(|| last4(&user.pending_mobile)),
            "pending": user.pending_mobile.is_some(),
            "totp": user.totp_enabled(),
            "recoveryCodesLeft": user.factors.recovery_codes.len(),
        },
        "createdAt": clock::format(user.created_at),
        "updatedAt": clock::format(user.updated_at),
    })
}

/// `{"user": …}`.
pub fn user_wrapped(user: &User) -> Value {
    json!({ "user": self::user(user) })
}

/// A completed login: the tokens, `twoFactorRequired: false` and the user.
pub fn login(tokens: &Tokens, user: &User) -> Value {
    let mut body = json!(tokens);
    body["twoFactorRequired"] = json!(false);
    body["user"] = self::user(user);
    body
}

/// A login waiting for its second factor: the `2fa`-scope token, the session and the kinds
/// of code the user can enter.
pub fn two_factor_login(token: &str, session: SessionId, user: &User) -> Value {
    json!({
        "token": token,
        "sessionUUID": session,
        "twoFactorRequired": true,
        "methods": two_factor_methods(user),
    })
}

/// In this order, of those the user has: `totp`, `sms`, `recoveryCode`.
fn two_factor_methods(user: &User) -> Vec<&'static str> {
    [
        (user.totp_enabled(), "totp"),
        (user.mobile.is_some(), "sms"),
        (!user.factors.recovery_codes.is_empty(), "recoveryCode"),
    ]
    .into_iter()
    .filter_map(|(present, method)| present.then_some(method))
    .collect()
}

/// A new authenticator app's secret, shown once.
pub fn totp_enrolment(enrolment: &Enrolment) -> Value {
    json!({
        "secret": enrolment.secret,
        "otpauthUri": enrolment.otpauth_uri,
    })
}

/// A new set of recovery codes, shown once.
pub fn recovery_codes(codes: &[String]) -> Value {
    json!({ "codes": codes })
}

/// A right code at `POST /users/sessions/verify`.
pub fn verified(verified: &Verified) -> Value {
    match verified {
        Verified::LoggedIn { tokens, user } => login(tokens, user),
        Verified::Enabled(user) => user_wrapped(user),
    }
}

/// Registration: the user and the tokens of its first session.
pub fn registration(tokens: &Tokens, user: &User) -> Value {
    let mut body = json!(tokens);
    body["user"] = self::user(user);
    body
}

/// The `meta` of a paged list.
pub fn meta<T>(page: &Page<T>) -> Value {
    json!({
        "page": page.page,
        "limit": page.limit,
        "total": page.total,
        "nextCursor": page.next_cursor,
    })
}

/// A new report and how to upload its file.
pub fn created_report(created: &CreatedReport) -> Value {
    let report = &created.report;
    json!({
        "uuid": report.id,
        "userUUID": report.user_id,
        "createdAt": clock::format(report.created_at),
        "fileName": report.file_name,
        "upload": {
            "method": "PUT",
            "url": created.upload.url,
            "headers": created.upload.headers,
            "expiresAt": clock::format(created.upload.expires_at),
        },
    })
}

/// A report in its owner's listing, with a presigned download.
pub fn listed_report(listed: &ListedReport) -> Value {
    let report = &listed.report;
    json!({
        "uuid": report.id,
        "userUUID": report.user_id,
        "createdAt": clock::format(report.created_at),
        "fileName": report.file_name,
        "contentType": report.content_type,
        "description": report.description,
        "downloadUrl": listed.download_url,
    })
}

/// A security event in its user's listing: what, when, from where and by whom; never a secret.
pub fn security_event(event: &SecurityEvent) -> Value {
    json!({
        "uuid": event.id,
        "type": event.kind.as_str(),
        "createdAt": clock::format(event.created_at),
        "sessionUUID": event.session_id,
        "ipAddress": event.origin.ip_address,
        "userAgent": event.origin.user_agent,
        "actor": event.actor.map(|actor| json!({ "uuid": actor.id, "admin": actor.admin })),
    })
}

/// A passkey as its owner sees it: exactly these keys, never the key material or credential id.
pub fn passkey(passkey: &Passkey) -> Value {
    json!({
        "uuid": passkey.id,
        "name": passkey.name,
        "createdAt": clock::format(passkey.created_at),
        "lastUsedAt": passkey.last_used_at.map(clock::format),
        "backedUp": passkey.backed_up,
    })
}

/// A started WebAuthn ceremony: its uuid and the options for the client's WebAuthn call.
pub fn ceremony_options(options: &CeremonyOptions) -> Value {
    json!({
        "ceremonyUUID": options.ceremony_id,
        "publicKey": options.public_key,
    })
}

/// A live session in its user's list: never a token or hash.
pub fn listed_session(listed: &ListedSession) -> Value {
    let session = &listed.session;
    json!({
        "uuid": session.id,
        "createdAt": clock::format(session.created_at),
        "lastUsedAt": clock::format(session.last_used_at),
        "platform": session.platform,
        "appVersion": session.app_version,
        "buildNumber": session.build_number,
        "userAgent": session.user_agent,
        "current": listed.current,
    })
}

/// The `meta` of an unpaged list.
pub fn total(count: usize) -> Value {
    json!({ "total": count })
}

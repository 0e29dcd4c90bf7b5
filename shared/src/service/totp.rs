//! The authenticator app (RFC 6238) and the recovery codes: enrolling an app (its secret shown
//! once, stored only sealed), activating it with one of its codes, removing it, and issuing a
//! new set of recovery codes (shown once, stored only as HMACs).

use crate::ApiError;
use crate::app::{Core, Principal};
use crate::domain::code::CodeChange;
use crate::domain::ids::UserId;
use crate::domain::mail::Mailer;
use crate::domain::security_event::EventType;
use crate::domain::user::User;
use crate::security::recovery_codes;
use crate::security::totp::TotpSecret;
use crate::service::second_factor::{self, Accept, Proof};
use crate::service::users;

/// A new app's secret, as the user types or scans it. Shown once.
#[derive(Debug)]
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// `POST /users/{uuid}/totp` (the caller's own): after the password, a fresh secret pending
/// until one of its codes is entered; it replaces a pending one. 409 while an app is active.
pub async fn enrol(
    core: &Core,
    principal: &Principal,
    current_password: Option<&str>,
) -> Result<Enrolment, ApiError> {
    let user = &principal.user;
    users::confirm_current_password(core, user, current_password).await?;
    if user.totp_enabled() {
        return Err(ApiError::TotpAlreadyEnabled);
    }
    let secret = TotpSecret::generate();
    let sealed = second_factor::seal_totp(core, user.id, &secret);
    second_factor::save(core, user.id, &principal.cause(), None, |user| {
        if user.totp_enabled() {
            return Err(ApiError::TotpAlreadyEnabled);
        }
        user.factors.pending_totp_secret = Some(sealed.clone());
        Ok(Vec::new())
    })
    .await?;
    tracing::info!(user = %user.id, "authenticator app enrolment started");
    Ok(Enrolment {
        secret: secret.to_base32(),
        otpauth_uri: secret.otpauth_uri(&user.email),
    })
}

/// `POST /users/{uuid}/totp/verify`: a code of the pending app activates it. 409 while an app
/// is active, 404 "Authenticator app is not pending." without an enrolment.
pub async fn activate(core: &Core, principal: &Principal, code: &str) -> Result<User, ApiError> {
    let user = &principal.user;
    if user.totp_enabled() {
        return Err(ApiError::TotpAlreadyEnabled);
    }
    let pending = user
        .factors
        .pending_totp_secret
        .clone()
        .ok_or(ApiError::TotpNotPending)?;
    second_factor::check(core, user, code, Accept::totp(&pending)).await?;
    let (saved, _) = second_factor::save(core, user.id, &principal.cause(), None, |user| {
        if user.totp_enabled() {
            return Err(ApiError::TotpAlreadyEnabled);
        }
        // Replaced by a newer enrolment meanwhile: this code proved the old secret.
        if user.factors.pending_totp_secret.as_deref() != Some(pending.as_str()) {
            return Err(ApiError::TotpNotPending);
        }
        user.factors.totp_secret = user.factors.pending_totp_secret.take();
        Ok(Vec::new())
    })
    .await?;
    tracing::info!(user = %user.id, "authenticator app enabled");
    Ok(saved)
}

/// `DELETE /users/{uuid}/totp`: the caller's own app, with a code (TOTP, texted or recovery;
/// 400 "Code is required." without), or another user's as a csrAdmin (no code). Removing the
/// last factor deletes the recovery codes; the notice is mailed.
pub async fn remove(
    core: &Core,
    mailer: &dyn Mailer,
    principal: &Principal,
    target: UserId,
    code: Option<&str>,
) -> Result<(), ApiError> {
    let caller = &principal.user;
    let by_admin = target != caller.id;
    let user = if !by_admin {
        caller.clone()
    } else if caller.is_admin() {
        users::find_live(core, target)
            .await?
            .ok_or(ApiError::UserNotFound)?
    } else {
        return Err(ApiError::NoAccess);
    };
    if !user.totp_enabled() {
        return Err(ApiError::TotpNotEnabled);
    }
    let proof = match by_admin {
        true => None,
        false => {
            let code = code.ok_or(ApiError::CodeRequired)?;
            Some(second_factor::check(core, &user, code, Accept::any(&user)).await?)
        }
    };
    let code_change = match &proof {
        Some(Proof::Sms(live)) => Some(CodeChange::Consume(&live.id)),
        _ => None,
    };
    let (saved, previous) =
        second_factor::save(core, user.id, &principal.cause(), code_change, |user| {
            if !user.totp_enabled() {
                return Err(ApiError::TotpNotEnabled);
            }
            let events = match &proof {
                Some(Proof::Recovery(hmac)) => second_factor::spend_recovery_code(user, hmac)?,
                _ => Vec::new(),
            };
            user.factors.totp_secret = None;
            user.factors.pending_totp_secret = None;
            second_factor::drop_recovery_codes_without_factor(user);
            Ok(events)
        })
        .await?;
    tracing::info!(user = %user.id, by = %caller.id, "authenticator app removed");
    second_factor::notify_removed(mailer, &previous, &saved).await;
    Ok(())
}

/// `POST /users/{uuid}/recovery-codes`: after the password, a new set of codes replacing the
/// old one, returned formatted (`xxxxx-xxxxx`). 400 "Two-factor authentication is not
/// enabled." without an active factor.
pub async fn generate_recovery_codes(
    core: &Core,
    principal: &Principal,
    current_password: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let user = &principal.user;
    users::confirm_current_password(core, user, current_password).await?;
    if !user.two_factor_enabled() {
        return Err(ApiError::TwoFactorNotEnabled);
    }
    let codes = recovery_codes::generate_set();
    let stored: Vec<String> = codes.iter().map(|code| code.hmac(&core.hmac_key)).collect();
    second_factor::save(core, user.id, &principal.cause(), None, |user| {
        if !user.two_factor_enabled() {
            return Err(ApiError::TwoFactorNotEnabled);
        }
        user.factors.recovery_codes = stored.clone();
        Ok(vec![EventType::RecoveryCodesGenerated])
    })
    .await?;
    tracing::info!(user = %user.id, "recovery codes generated");
    Ok(codes.iter().map(|code| code.formatted()).collect())
}

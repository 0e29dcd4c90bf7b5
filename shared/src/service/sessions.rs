//! Sessions: opening one (registration, login, 2FA verification), refreshing with rotation
//! and reuse detection, and logging out.

use serde::Serialize;

use crate::ApiError;
use crate::app::Core;
use crate::domain::StoreError;
use crate::domain::email::Email;
use crate::domain::ids::SessionId;
use crate::domain::session::{RefreshCheck, Session, Stage};
use crate::domain::user::{Status, User};
use crate::security::jwt::Scope;
use crate::security::password::Password;
use crate::service::lockout;

/// What a full login hands the client. The refresh token is shown here once and never stored.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub token: String,
    pub refresh_token: String,
    #[serde(rename = "sessionUUID")]
    pub session_uuid: SessionId,
    pub expires_in: i64,
}

/// Client details a refresh may record on the session.
#[derive(Clone, Debug, Default)]
pub struct DeviceInfo {
    pub device_token: Option<String>,
    pub platform: Option<String>,
    pub app_version: Option<String>,
    pub build_number: Option<u64>,
}

/// Opens a full session for `user`.
pub async fn open(core: &Core, user: &User) -> Result<Tokens, ApiError> {
    let now = core.clock.now();
    let mut session = Session::new(user.id, user.session_epoch, Stage::Full, now);
    let refresh_token = session.rotate(now);
    core.sessions.create_session(&session).await?;
    Ok(tokens(core, user, &session, refresh_token))
}

fn tokens(core: &Core, user: &User, session: &Session, refresh_token: String) -> Tokens {
    let (token, expires_in) = core.jwt.issue(
        user.id,
        session.id,
        user.role_names(),
        Scope::Full,
        core.clock.now(),
    );
    Tokens {
        token,
        refresh_token,
        session_uuid: session.id,
        expires_in,
    }
}

/// Upgrades a session waiting for its 2FA code to a full one, with its first refresh token.
pub async fn complete_two_factor(
    core: &Core,
    user: &User,
    session: &Session,
) -> Result<Tokens, ApiError> {
    let now = core.clock.now();
    let mut upgraded = session.clone();
    upgraded.stage = Stage::Full;
    upgraded.version += 1;
    let refresh_token = upgraded.rotate(now);
    match core.sessions.save_session(&upgraded, session.version).await {
        Ok(()) => Ok(tokens(core, user, &upgraded, refresh_token)),
        Err(StoreError::NotFound | StoreError::VersionConflict) => Err(ApiError::InvalidToken),
        Err(other) => Err(other.into()),
    }
}

pub enum LoginOutcome {
    /// Logged in.
    Complete { tokens: Tokens, user: User },
    /// Password right, 2FA enabled: a session waits for the SMS code.
    TwoFactorRequired { user: User, session: Session },
}

/// Email and password login with lockout. Unknown email, wrong password and a user who may
/// not log in all get the same 401, after the same hashing work.
pub async fn login(
    core: &Core,
    email: Option<String>,
    password: Option<String>,
) -> Result<LoginOutcome, ApiError> {
    let email = email
        .filter(|e| !e.trim().is_empty())
        .ok_or(ApiError::EmailAddressRequired)?;
    let password = password
        .filter(|p| !p.is_empty())
        .ok_or(ApiError::PasswordRequired)?;
    let email_key = email.trim().to_lowercase();
    let read = lockout::check(core, &email_key).await?;
    let user = match Email::parse(&email) {
        Ok(email) => core.users.find_user_by_email(&email.normalized()).await?,
        Err(_) => None,
    };
    // A password the rules would refuse still costs a hash, so timing tells nothing.
    let candidate = Password::parse(&password)
        .unwrap_or_else(|_| Password::parse("invalid-placeholder").expect("long enough"));
    let hash = user.as_ref().map(|u| u.password_hash.as_str());
    let matches = core.hasher.verify(&candidate, hash).await && Password::parse(&password).is_ok();
    let user = match user {
        Some(user) if matches && user.status == Status::Active => user,
        _ => {
            lockout::failed(core, &email_key).await?;
            return Err(ApiError::BadCredentials);
        }
    };
    lockout::succeeded(core, &email_key, read).await?;
    if user.two_factor_enabled() {
        let now = core.clock.now();
        let session = Session::new(user.id, user.session_epoch, Stage::TwoFactor, now);
        core.sessions.create_session(&session).await?;
        return Ok(LoginOutcome::TwoFactorRequired { user, session });
    }
    let tokens = open(core, &user).await?;
    Ok(LoginOutcome::Complete { tokens, user })
}

/// A `2fa`-scope token for a session waiting for its code.
pub fn two_factor_token(core: &Core, user: &User, session: &Session) -> String {
    let (token, _lifetime) = core.jwt.issue(
        user.id,
        session.id,
        user.role_names(),
        Scope::TwoFactor,
        core.clock.now(),
    );
    token
}

/// Rotates the refresh token of a session. See API.md "Refresh" for the order of checks.
pub async fn refresh(
    core: &Core,
    session_id: SessionId,
    refresh_token: &str,
    device: DeviceInfo,
) -> Result<Tokens, ApiError> {
    for _ in 0..5 {
        let session = core
            .sessions
            .get_session(session_id)
            .await?
            .ok_or(ApiError::RefreshSessionNotFound)?;
        let user = core
            .users
            .get_user(session.user_id)
            .await?
            .filter(User::is_active)
            .ok_or(ApiError::RefreshUserNotFound)?;
        let now = core.clock.now();
        if session.stage != Stage::Full || !session.is_live(user.session_epoch, now) {
            return Err(ApiError::RefreshSessionNotFound);
        }
        match session.check_refresh(refresh_token, now) {
            RefreshCheck::Current | RefreshCheck::InGrace => {}
            RefreshCheck::Reused => {
                tracing::warn!(session = %session.id, user = %user.id, "refresh token reused after its grace window; session revoked");
                core.sessions.delete_session(session.id).await?;
                return Err(ApiError::InvalidToken);
            }
            RefreshCheck::Unknown => return Err(ApiError::InvalidToken),
        }
        let mut next = session.clone();
        next.version += 1;
        let new_token = next.rotate(now);
        next.device_token = device.device_token.clone().or(next.device_token);
        next.platform = device.platform.clone().or(next.platform);
        next.app_version = device.app_version.clone().or(next.app_version);
        next.build_number = device.build_number.or(next.build_number);
        match core.sessions.save_session(&next, session.version).await {
            Ok(()) => return Ok(tokens(core, &user, &next, new_token)),
            Err(StoreError::VersionConflict) => continue,
            Err(StoreError::NotFound) => return Err(ApiError::RefreshSessionNotFound),
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::internal("refresh kept conflicting"))
}

/// Ends a session. Someone else's session (for a non-admin) looks exactly like a missing one.
pub async fn logout(core: &Core, caller: &User, session_id: SessionId) -> Result<(), ApiError> {
    let session = core.sessions.get_session(session_id).await?;
    match session {
        Some(session) if session.user_id == caller.id || caller.is_admin() => {
            core.sessions.delete_session(session_id).await?;
            Ok(())
        }
        _ => Err(ApiError::SessionIdDoesNotExist),
    }
}

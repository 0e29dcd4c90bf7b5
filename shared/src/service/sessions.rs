//! Sessions: opening one (registration, login, 2FA verification), refreshing with rotation
//! and reuse detection, and logging out.
//!
//! A login is `login.succeeded` when a full session is issued (a password login without 2FA, a
//! passkey login, a completed 2FA login), recorded in the write that creates or upgrades the
//! session; a password step that leaves a session waiting for its code records nothing.

use serde::Serialize;

use crate::ApiError;
use crate::app::{Core, Principal};
use crate::domain::StoreError;
use crate::domain::email::Email;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::security_event::{Cause, EventType, SecurityEvent};
use crate::domain::session::{MAX_LIVE_SESSIONS, RefreshCheck, Session, Stage};
use crate::domain::user::{Status, User};
use crate::security::jwt::Scope;
use crate::security::password::Password;
use crate::service::{lockout, users};

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
    /// Already clipped ([`crate::domain::session::clip_user_agent`]).
    pub user_agent: Option<String>,
}

/// Opens a full session for `user` (registration: the user's first session, which records
/// `user.registered` only).
pub async fn open(core: &Core, user: &User) -> Result<Tokens, ApiError> {
    let now = core.clock.now();
    let mut session = Session::new(user.id, user.session_epoch, Stage::Full, now);
    let refresh_token = session.rotate(now);
    core.sessions.create_session(&session).await?;
    Ok(tokens(core, user, &session, refresh_token))
}

/// Opens the full session of a login (password or passkey), recording `login.succeeded` by
/// the user in the same write.
pub async fn open_login(
    core: &Core,
    user: &User,
    user_agent: Option<String>,
) -> Result<Tokens, ApiError> {
    let now = core.clock.now();
    let mut session = login_session(user, Stage::Full, user_agent, now);
    let refresh_token = session.rotate(now);
    core.sessions
        .create_session_recording(&session, &[login_succeeded(user, &session, now)])
        .await?;
    Ok(tokens(core, user, &session, refresh_token))
}

fn login_session(
    user: &User,
    stage: Stage,
    user_agent: Option<String>,
    now: time::OffsetDateTime,
) -> Session {
    let mut session = Session::new(user.id, user.session_epoch, stage, now);
    session.user_agent = user_agent;
    session
}

/// Creates the session of a password login and clears the login's `attempt` (its lockout and
/// the events reserved with it) in one write, retried when a concurrent transaction got in
/// the way.
async fn create_login_session(
    core: &Core,
    session: &Session,
    events: &[SecurityEvent],
    attempt: lockout::Attempt,
) -> Result<(), ApiError> {
    for _ in 0..5 {
        match core
            .sessions
            .create_login_session(session, events, attempt.email_key(), attempt.recorded())
            .await
        {
            Err(StoreError::VersionConflict) => continue,
            other => return Ok(other?),
        }
    }
    Err(ApiError::internal("login kept conflicting"))
}

fn login_succeeded(user: &User, session: &Session, now: time::OffsetDateTime) -> SecurityEvent {
    Cause::by(user.id, false, session.id).event(user.id, EventType::LoginSucceeded, now)
}

/// Keeps the user at [`MAX_LIVE_SESSIONS`] live full sessions after `opened` became one:
/// ends the least recently used beyond the cap, never `opened`. The index is read
/// eventually consistently, so `opened` counts even when the read does not show it yet.
async fn end_sessions_over_the_cap(
    core: &Core,
    user: &User,
    opened: SessionId,
) -> Result<(), ApiError> {
    let now = core.clock.now();
    let live: Vec<Session> = core
        .sessions
        .list_user_sessions(user.id)
        .await?
        .into_iter()
        .filter(|s| s.stage == Stage::Full && s.is_live(user.session_epoch, now))
        .collect();
    let counted = live.len() + usize::from(!live.iter().any(|s| s.id == opened));
    let excess = counted.saturating_sub(MAX_LIVE_SESSIONS);
    // Most recently used first, so the least recently used are at the end.
    for stale in live.iter().rev().filter(|s| s.id != opened).take(excess) {
        core.sessions.delete_session(stale.id).await?;
        tracing::info!(user = %user.id, session = %stale.id, "session cap reached; least recently used session ended");
    }
    Ok(())
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
    let succeeded = login_succeeded(user, &upgraded, now);
    match core
        .sessions
        .save_session_recording(&upgraded, session.version, &[succeeded])
        .await
    {
        Ok(()) => {
            end_sessions_over_the_cap(core, user, upgraded.id).await?;
            Ok(tokens(core, user, &upgraded, refresh_token))
        }
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
/// not log in all get the same 401, after the same hashing work and the same requests: an
/// unknown email reads a user as its claim would have led to, and its lockout write is the
/// same transaction, without the `login.failed` an account's attempt records in it.
///
/// Its DynamoDB requests: the claim and the lockout (one `BatchGetItem`), the user, the
/// attempt reserved before the hash, then on success the session with the lockout cleared (one
/// transaction) and the query of the user's sessions for the cap.
pub async fn login(
    core: &Core,
    email: Option<String>,
    password: Option<String>,
    user_agent: Option<String>,
) -> Result<LoginOutcome, ApiError> {
    let email = email
        .filter(|e| !e.trim().is_empty())
        .ok_or(ApiError::EmailAddressRequired)?;
    let password = password
        .filter(|p| !p.is_empty())
        .ok_or(ApiError::PasswordRequired)?;
    let email_key = email.trim().to_lowercase();
    let (user, seen) = match Email::parse(&email) {
        Ok(email) => {
            let (claimed, seen) = core
                .lockouts
                .find_claim_and_lockout(&email.normalized(), &email_key)
                .await?;
            // An unknown email reads a user id no account has: the read a claim leads to.
            let read = core
                .users
                .get_user(claimed.unwrap_or_else(UserId::new))
                .await?;
            let user = read.filter(|user| claimed.is_some() && user.status != Status::Deleted);
            (user, seen)
        }
        Err(_) => (None, core.lockouts.get_lockout(&email_key).await?),
    };
    // Nobody is authenticated yet: the events of a failure have no actor.
    let anonymous = Cause::default();
    let attempt = lockout::reserve_seen(
        core,
        &email_key,
        user.as_ref().map(|user| (user.id, &anonymous)),
        seen,
    )
    .await?;
    // A password the rules would refuse still costs a hash, so timing tells nothing.
    let candidate = Password::parse(&password)
        .unwrap_or_else(|_| Password::parse("invalid-placeholder").expect("long enough"));
    let hash = user.as_ref().map(|u| u.password_hash.as_str());
    let matches = core.hasher.verify(&candidate, hash).await && Password::parse(&password).is_ok();
    let user = match user {
        Some(user) if matches && user.status == Status::Active => user,
        // The attempt was counted as a failure when it was reserved.
        _ => return Err(ApiError::BadCredentials),
    };
    let now = core.clock.now();
    if user.two_factor_enabled() {
        let session = login_session(&user, Stage::TwoFactor, user_agent, now);
        create_login_session(core, &session, &[], attempt).await?;
        return Ok(LoginOutcome::TwoFactorRequired { user, session });
    }
    let mut session = login_session(&user, Stage::Full, user_agent, now);
    let refresh_token = session.rotate(now);
    let succeeded = login_succeeded(&user, &session, now);
    create_login_session(core, &session, &[succeeded], attempt).await?;
    end_sessions_over_the_cap(core, &user, session.id).await?;
    let tokens = tokens(core, &user, &session, refresh_token);
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
        let successor = |token: &str| successor(core, session.id, token);
        let new_token = match session.check_refresh(refresh_token, now) {
            RefreshCheck::Current => successor(refresh_token),
            // A concurrent refresh already rotated this token: answer the token it got, so
            // that both callers hold the current one and neither is later taken for reuse.
            RefreshCheck::InGrace => {
                match session.current_from_grace(refresh_token, successor, now) {
                    Some(current) => return Ok(tokens(core, &user, &session, current)),
                    None => crate::security::crypto::random_token(),
                }
            }
            RefreshCheck::Reused => {
                tracing::warn!(session = %session.id, user = %user.id, "refresh token reused after its grace window; session revoked");
                // Whoever presented the token is not known to be the user: no actor.
                let detected = SecurityEvent::new(user.id, EventType::RefreshReuseDetected, now)
                    .session(session.id);
                delete_recording(core, session.id, detected).await?;
                return Err(ApiError::InvalidToken);
            }
            RefreshCheck::Unknown => return Err(ApiError::InvalidToken),
        };
        let mut next = session.clone();
        next.version += 1;
        next.rotate_to(&new_token, now);
        next.device_token = device.device_token.clone().or(next.device_token);
        next.platform = device.platform.clone().or(next.platform);
        next.app_version = device.app_version.clone().or(next.app_version);
        next.build_number = device.build_number.or(next.build_number);
        next.user_agent = device.user_agent.clone().or(next.user_agent);
        match core.sessions.save_session(&next, session.version).await {
            Ok(()) => return Ok(tokens(core, &user, &next, new_token)),
            Err(StoreError::VersionConflict) => continue,
            Err(StoreError::NotFound) => return Err(ApiError::RefreshSessionNotFound),
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::internal("refresh kept conflicting"))
}

/// The refresh token that replaces `token` in a session: an HMAC under the server's key, so
/// the server can recompute the current token from a just-rotated one (for a concurrent
/// refresh inside the grace window) while the table holds only hashes. Nobody without the
/// key can derive it, and the presented token itself is the secret it is derived from.
fn successor(core: &Core, session: SessionId, token: &str) -> String {
    crate::security::crypto::hmac_token(&core.hmac_key, &format!("refresh:{session}:{token}"))
}

/// Ends a session, recording `session.ended` for its user by the caller. Someone else's
/// session (for a non-admin) looks exactly like a missing one.
pub async fn logout(
    core: &Core,
    caller: &Principal,
    session_id: SessionId,
) -> Result<(), ApiError> {
    let session = core.sessions.get_session(session_id).await?;
    match session {
        Some(session) if session.user_id == caller.user.id || caller.user.is_admin() => {
            let ended =
                caller
                    .cause()
                    .event(session.user_id, EventType::SessionEnded, core.clock.now());
            delete_recording(core, session_id, ended).await?;
            Ok(())
        }
        _ => Err(ApiError::SessionIdDoesNotExist),
    }
}

/// Deletes the session with `event` in one write (retried if a concurrent transaction got in
/// the way); a session already gone records nothing.
async fn delete_recording(
    core: &Core,
    session: SessionId,
    event: SecurityEvent,
) -> Result<(), ApiError> {
    for _ in 0..3 {
        match core
            .sessions
            .delete_session_recording(session, std::slice::from_ref(&event))
            .await
        {
            Err(StoreError::VersionConflict) => continue,
            other => return Ok(other.map(|_| ())?),
        }
    }
    Err(ApiError::internal("session deletion kept conflicting"))
}

/// A live full session of a user as the sessions list shows it.
#[derive(Debug)]
pub struct ListedSession {
    pub session: Session,
    /// It is the caller's own session.
    pub current: bool,
}

/// The user whose sessions `caller` asks for: themselves, or anyone live for a csrAdmin.
/// 403 "No Access." for another user otherwise (whether or not they exist), 404 "This user
/// does not exist." for a csrAdmin asking for an unknown or deleted user.
async fn sessions_owner(core: &Core, caller: &Principal, owner: UserId) -> Result<User, ApiError> {
    if owner == caller.user.id {
        return Ok(caller.user.clone());
    }
    if !caller.user.is_admin() {
        return Err(ApiError::NoAccess);
    }
    users::find_live(core, owner)
        .await?
        .ok_or(ApiError::UserNotFound)
}

/// Every live full session of `owner`, most recently used first (`GET /users/{uuid}/sessions`).
/// Sessions waiting for their 2FA code, ended ones (another epoch) and idle ones are left out.
pub async fn list(
    core: &Core,
    caller: &Principal,
    owner: UserId,
) -> Result<Vec<ListedSession>, ApiError> {
    let user = sessions_owner(core, caller, owner).await?;
    let now = core.clock.now();
    Ok(core
        .sessions
        .list_user_sessions(user.id)
        .await?
        .into_iter()
        .filter(|s| s.stage == Stage::Full && s.is_live(user.session_epoch, now))
        .take(MAX_LIVE_SESSIONS)
        .map(|session| ListedSession {
            current: session.id == caller.session.id,
            session,
        })
        .collect())
}

/// Signs `owner` out everywhere else (`DELETE /users/{uuid}/sessions`): every session of the
/// user ends, those waiting for a 2FA code included, except the caller's own when it is the
/// user's. One versioned write of the user (`sessionEpoch + 1`, which ends every session at
/// once, however many) that moves the caller's session to the new epoch in the same
/// transaction, so no session is left half-ended.
pub async fn end_other_sessions(
    core: &Core,
    caller: &Principal,
    owner: UserId,
) -> Result<(), ApiError> {
    let user = sessions_owner(core, caller, owner).await?;
    let keep = (user.id == caller.user.id).then_some(caller.session.id);
    // `sessions.ended`, by the caller, is written with it.
    users::update_by(core, user.id, keep, &caller.cause(), |user| {
        users::revoke_all_sessions(user);
        Ok(())
    })
    .await?;
    tracing::info!(user = %user.id, by = %caller.user.id, kept = keep.is_some(), "signed out everywhere else");
    Ok(())
}

//! Two-factor authentication by SMS: enrolling a number, texting codes (at enrolment, at a
//! 2FA login and on request, within the resend limits), checking them, and removing 2FA. A
//! 2FA login and removing one's number take an authenticator-app or recovery code too
//! (`second_factor`).
//!
//! A code is 6 digits from the system CSPRNG, stored only as an HMAC, lives 10 minutes, is
//! used once and allows 5 checks, counted atomically in storage. A user has at most one live
//! code: the latest texted, whatever for. A right code proves the number it was texted to, so
//! a 2FA login or removing verified 2FA needs a code texted to the verified number, and
//! activating an enrolment one texted to the pending number.

use time::{Duration, OffsetDateTime};

use crate::app::Core;
use crate::domain::StoreError;
use crate::domain::code::{CodeChange, OneTimeCode, SmsLog};
use crate::domain::ids::UserId;
use crate::domain::mail::Mailer;
use crate::domain::phone::PhoneNumber;
use crate::domain::session::{Session, Stage};
use crate::domain::sms::CodeSender;
use crate::domain::user::User;
use crate::security::crypto;
use crate::security::jwt::Scope;
use crate::service::second_factor::{self, Accept, Proof};
use crate::service::sessions::{self, Tokens};
use crate::service::users;
use crate::{ApiError, Principal};

pub const CODE_DIGITS: u32 = 6;
pub const CODE_LIFETIME: Duration = Duration::minutes(10);
pub const MAX_ATTEMPTS: u32 = 5;
/// Texts to one user: at most one per this interval…
pub const RESEND_INTERVAL: Duration = Duration::seconds(30);
/// …and at most this many per [`SEND_WINDOW`].
pub const SENDS_PER_WINDOW: usize = 5;
pub const SEND_WINDOW: Duration = Duration::hours(1);

/// What the per-user limits do to a text that would break them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limits {
    /// Enrolment and resend: refused with 429 and `Retry-After`.
    Enforce,
    /// A 2FA login: nothing is texted and the login goes on (the live code stays the one to
    /// enter, or an authenticator app or recovery code completes it).
    Login,
}

/// Texts a login code to the user's verified number, for a session waiting for it, unless a
/// live unused code went out under 30 s ago or 5 texts went out within the hour (then nothing
/// is texted and the login answers the same). With an active authenticator app nothing is
/// texted (the app may ask for a text through the resend route). If the provider refuses the
/// code, the waiting session is deleted too, so a failed login leaves nothing behind.
pub async fn send_login_code(
    core: &Core,
    sms: &dyn CodeSender,
    user: &User,
    session: &Session,
) -> Result<(), ApiError> {
    if user.totp_enabled() {
        return Ok(());
    }
    let result = async {
        let phone = user
            .mobile
            .as_deref()
            .and_then(PhoneNumber::parse_e164)
            .ok_or_else(|| ApiError::internal("2FA login for a user without a valid number"))?;
        if let Some(code) = text_code(core, sms, user.id, &phone, Limits::Login).await? {
            core.codes.put_code(&code).await?;
        }
        Ok(())
    }
    .await;
    if result.is_err()
        && let Err(error) = core.sessions.delete_session(session.id).await
    {
        tracing::warn!(user = %user.id, session = %session.id, %error, "waiting 2FA session not deleted after a failed code");
    }
    result
}

/// What a right code at `POST /users/sessions/verify` did.
#[derive(Debug)]
pub enum Verified {
    /// Completed a 2FA login.
    LoggedIn { tokens: Tokens, user: User },
    /// Activated the pending number; the user now has `twoFactorAuth.enabled: true`.
    Enabled(User),
}

/// `POST /users/sessions/verify`. With a `2fa`-scope token it completes the login, with a
/// code of the app, one texted to the verified number or a recovery code (which also ends the
/// live texted code). With a full token it activates the user's pending number, with a code
/// texted to it. A wrong, expired, spent or missing code, or nothing to verify, is 400 "Code
/// is not valid.…".
pub async fn verify(core: &Core, principal: &Principal, code: &str) -> Result<Verified, ApiError> {
    let user = &principal.user;
    let cause = principal.cause();
    match (principal.claims.scope, principal.session.stage) {
        (Scope::TwoFactor, Stage::TwoFactor) => {
            let user = match second_factor::check(core, user, code, Accept::any(user)).await? {
                Proof::Totp => user.clone(),
                Proof::Sms(live) => {
                    if !core.codes.consume_code(user.id, &live.id).await? {
                        return Err(ApiError::CodeNotValid);
                    }
                    user.clone()
                }
                Proof::Recovery(hmac) => {
                    let change = Some(CodeChange::Delete);
                    second_factor::save(core, user.id, &cause, change, |user| {
                        second_factor::spend_recovery_code(user, &hmac)
                    })
                    .await?
                    .0
                }
            };
            let tokens = sessions::complete_two_factor(core, &user, &principal.session).await?;
            Ok(Verified::LoggedIn { tokens, user })
        }
        // That login was completed already: its 2fa token is spent.
        (Scope::TwoFactor, Stage::Full) => Err(ApiError::InvalidToken),
        (Scope::Full, _) => {
            let pending = user.pending_mobile.clone().ok_or(ApiError::CodeNotValid)?;
            let Proof::Sms(live) =
                second_factor::check(core, user, code, Accept::sms(&pending)).await?
            else {
                return Err(ApiError::internal(
                    "a number was proved by another kind of code",
                ));
            };
            let change = Some(CodeChange::Consume(&live.id));
            let (user, _) = second_factor::save(core, user.id, &cause, change, |user| {
                if user.pending_mobile.as_deref() != Some(pending.as_str()) {
                    return Err(ApiError::CodeNotValid);
                }
                user.mobile = user.pending_mobile.take();
                Ok(Vec::new())
            })
            .await?;
            tracing::info!(user = %user.id, "2FA number verified");
            Ok(Verified::Enabled(user))
        }
    }
}

/// Makes `phone` the user's pending number and texts it a code. A number outside the SMS
/// allow-list is a field error under `mobileCountryCode`; the resend limits apply (429 with
/// `Retry-After`). Nothing is stored unless the text went out. Returns the saved user.
pub async fn enrol(
    core: &Core,
    sms: &dyn CodeSender,
    user: &User,
    phone: &PhoneNumber,
) -> Result<User, ApiError> {
    if !core.config.sms_allowed(phone.as_str()) {
        return Err(ApiError::field(
            "mobileCountryCode",
            "Texts cannot be sent to numbers of this country or area code.",
        ));
    }
    let code = text_code(core, sms, user.id, phone, Limits::Enforce)
        .await?
        .ok_or_else(|| ApiError::internal("an enforced text was neither sent nor refused"))?;
    let change = Some(CodeChange::Put(&code));
    let cause = crate::domain::security_event::Cause::default();
    let (user, _) = second_factor::save(core, user.id, &cause, change, |user| {
        user.pending_mobile = Some(phone.as_str().to_owned());
        Ok(Vec::new())
    })
    .await?;
    Ok(user)
}

/// `GET /users/two-factor-auth/code`: texts a new code to `requested`, which must be the
/// user's verified or pending number, or by default the verified one (else the pending one).
/// Limited to one per 30 s and five per hour per user (429 with `Retry-After`).
pub async fn resend(
    core: &Core,
    sms: &dyn CodeSender,
    user: &User,
    requested: Option<PhoneNumber>,
) -> Result<(), ApiError> {
    let on_file = |number: &str| {
        user.mobile.as_deref() == Some(number) || user.pending_mobile.as_deref() == Some(number)
    };
    let phone = match requested {
        Some(phone) if on_file(phone.as_str()) => phone,
        Some(_) => {
            return Err(ApiError::field(
                "phoneNumber",
                "Must be this account's verified or pending two-factor number.",
            ));
        }
        None => user
            .mobile
            .as_deref()
            .or(user.pending_mobile.as_deref())
            .and_then(PhoneNumber::parse_e164)
            .ok_or_else(|| {
                ApiError::field("phoneNumber", "This account has no two-factor number.")
            })?,
    };
    let code = text_code(core, sms, user.id, &phone, Limits::Enforce)
        .await?
        .ok_or_else(|| ApiError::internal("an enforced text was neither sent nor refused"))?;
    core.codes.put_code(&code).await?;
    Ok(())
}

/// `DELETE /users/two-factor-auth`: removes the caller's verified and pending numbers (the
/// app has its own route). While no factor is active no code is needed (a given one is
/// ignored); otherwise a code of the app, one texted to the verified number or a recovery code
/// is. Removing the last factor deletes the recovery codes; removing a verified number mails
/// the notice. Ends no session.
pub async fn remove_own(
    core: &Core,
    mailer: &dyn Mailer,
    principal: &Principal,
    code: Option<&str>,
) -> Result<(), ApiError> {
    let user = &principal.user;
    if user.mobile.is_none() && user.pending_mobile.is_none() {
        return Ok(());
    }
    let proof = match user.two_factor_enabled() {
        false => None,
        true => {
            let code = code.ok_or(ApiError::CodeNotValid)?;
            Some(second_factor::check(core, user, code, Accept::any(user)).await?)
        }
    };
    let change = match &proof {
        Some(Proof::Sms(live)) => CodeChange::Consume(&live.id),
        // The number's code goes with it.
        _ => CodeChange::Delete,
    };
    let (saved, previous) =
        second_factor::save(core, user.id, &principal.cause(), Some(change), |user| {
            let events = match &proof {
                // Enabled meanwhile: now a code is needed.
                None if user.two_factor_enabled() => return Err(ApiError::CodeNotValid),
                None | Some(Proof::Totp) => Vec::new(),
                // The code proved a number that is no longer the verified one.
                Some(Proof::Sms(live)) if user.mobile.as_deref() != Some(live.phone.as_str()) => {
                    return Err(ApiError::CodeNotValid);
                }
                Some(Proof::Sms(_)) => Vec::new(),
                Some(Proof::Recovery(hmac)) => second_factor::spend_recovery_code(user, hmac)?,
            };
            user.mobile = None;
            user.pending_mobile = None;
            second_factor::drop_recovery_codes_without_factor(user);
            Ok(events)
        })
        .await?;
    tracing::info!(user = %user.id, "2FA number removed by its user");
    second_factor::notify_removed(mailer, &previous, &saved).await;
    Ok(())
}

/// `DELETE /users/{uuid}/two-factor-auth` (the caller is a csrAdmin): removes another user's
/// every second factor (numbers, app, recovery codes) and forgets their wrong codes. 404 "User
/// UUID not found." for an unknown or deleted user.
pub async fn remove_for(
    core: &Core,
    mailer: &dyn Mailer,
    principal: &Principal,
    id: UserId,
) -> Result<(), ApiError> {
    let user = users::find_live(core, id)
        .await?
        .ok_or(ApiError::UserUuidNotFound)?;
    let mut cleared = user.clone();
    cleared.clear_second_factors();
    if cleared != user {
        let saved = second_factor::save(
            core,
            id,
            &principal.cause(),
            Some(CodeChange::Delete),
            |user| {
                user.clear_second_factors();
                Ok(Vec::new())
            },
        )
        .await;
        let (saved, previous) = match saved {
            Err(ApiError::UserNotFound) => return Err(ApiError::UserUuidNotFound),
            other => other?,
        };
        tracing::info!(user = %id, by = %principal.user.id, "2FA removed by a csrAdmin");
        second_factor::notify_removed(mailer, &previous, &saved).await;
    }
    second_factor::forgive(core, id).await
}

/// The stored form of a code: an HMAC under the core's key, bound to the code's id.
fn code_hmac(core: &Core, code_id: &str, code: &str) -> String {
    crypto::hmac_hex(&core.hmac_key, &format!("2fa:{code_id}:{code}"))
}

/// Counts the text toward the user's limits and the service's daily cap, texts a fresh code
/// to `phone`, and returns the code for the caller to store; `None` when a login's text is
/// skipped by the limits. If the number is off the allow-list, the daily cap is reached or
/// the provider fails, nothing is texted or counted and 400 "Error returned from two factor
/// authentication provider" comes back.
async fn text_code(
    core: &Core,
    sms: &dyn CodeSender,
    user: UserId,
    phone: &PhoneNumber,
    limits: Limits,
) -> Result<Option<OneTimeCode>, ApiError> {
    // Enrolment refuses such a number as a field error; this keeps a number on file from
    // being texted after the allow-list was narrowed.
    if !core.config.sms_allowed(phone.as_str()) {
        tracing::warn!(%user, phone = %phone.redacted(), "2FA code not sent: number off the SMS allow-list");
        return Err(ApiError::TwoFactorProvider);
    }
    let now = core.clock.now();
    if !count_send(core, user, phone, now, limits).await? {
        tracing::info!(%user, "login code not texted: a live code went out under 30 s ago, or 5 within the hour");
        return Ok(None);
    }
    let day = now.to_offset(time::UtcOffset::UTC).date().to_string();
    let cap = core.config.sms_daily_cap;
    let under_cap = match core.codes.take_daily_sms(&day, cap).await {
        Ok(under_cap) => under_cap,
        Err(error) => {
            uncount(core, user, now, None).await;
            return Err(error.into());
        }
    };
    if !under_cap {
        // The metric filter of the SMS daily cap alarm matches `alert` (template.yaml).
        tracing::error!(alert = "sms_daily_cap_reached", %user, day, cap, "SMS daily cap reached: text refused");
        uncount(core, user, now, None).await;
        return Err(ApiError::TwoFactorProvider);
    }
    let code = crypto::random_digits(CODE_DIGITS);
    if let Err(error) = sms.send_code(phone, &code).await {
        tracing::warn!(%user, phone = %phone.redacted(), %error, "2FA code not sent");
        uncount(core, user, now, Some(&day)).await;
        return Err(ApiError::TwoFactorProvider);
    }
    tracing::info!(%user, phone = %phone.redacted(), "2FA code sent");
    let id = crypto::random_token();
    Ok(Some(OneTimeCode {
        user_id: user,
        hmac: code_hmac(core, &id, &code),
        id,
        phone: phone.as_str().to_owned(),
        expires_at: now + CODE_LIFETIME,
        attempts: 0,
    }))
}

/// Takes back a text counted at `at` (and on the daily counter of `day`) that did not go out.
async fn uncount(core: &Core, user: UserId, at: OffsetDateTime, day: Option<&str>) {
    if let Err(error) = uncount_send(core, user, at).await {
        tracing::warn!(%user, %error, "unsent text still counts toward the SMS limits");
    }
    if let Some(day) = day
        && let Err(error) = core.codes.return_daily_sms(day).await
    {
        tracing::warn!(%user, %error, "unsent text still counts toward the SMS daily cap");
    }
}

/// Whether the user's live code, unused and texted to `phone` under 30 s before `now`, is the
/// one a login should keep.
async fn live_recent_code(
    core: &Core,
    user: UserId,
    phone: &PhoneNumber,
    now: OffsetDateTime,
) -> Result<bool, ApiError> {
    Ok(core.codes.get_code(user).await?.is_some_and(|code| {
        let sent_at = code.expires_at - CODE_LIFETIME;
        code.expires_at > now
            && code.attempts < MAX_ATTEMPTS
            && code.phone == phone.as_str()
            && now - sent_at < RESEND_INTERVAL
    }))
}

/// Spends one check of the user's live code on `code`: the code if it matches and was texted
/// to `phone`, else 400 "Code is not valid.…". Input that cannot be a code spends nothing.
pub(crate) async fn check_code(
    core: &Core,
    user: UserId,
    code: &str,
    phone: &str,
) -> Result<OneTimeCode, ApiError> {
    let well_formed =
        code.len() == CODE_DIGITS as usize && code.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(ApiError::CodeNotValid);
    }
    let Some(live) = core
        .codes
        .take_attempt(user, core.clock.now(), MAX_ATTEMPTS)
        .await?
    else {
        return Err(ApiError::CodeNotValid);
    };
    let matches = crypto::constant_time_eq(code_hmac(core, &live.id, code), &live.hmac);
    if matches && live.phone == phone {
        Ok(live)
    } else {
        Err(ApiError::CodeNotValid)
    }
}

/// How long until another text is allowed, if one is not allowed at `now`.
fn wait_before_next_send(sent_at: &[OffsetDateTime], now: OffsetDateTime) -> Option<Duration> {
    let after_last = sent_at.last().map(|last| *last + RESEND_INTERVAL - now);
    let after_window = sent_at
        .len()
        .checked_sub(SENDS_PER_WINDOW)
        .map(|oldest_counted| sent_at[oldest_counted] + SEND_WINDOW - now);
    [after_last, after_window]
        .into_iter()
        .flatten()
        .filter(|wait| wait.is_positive())
        .max()
}

/// Records a text at `now` in the user's log (optimistically, retried on concurrent writes)
/// and returns `true`, unless a limit is hit: then `Enforce` refuses with 429 and
/// `Retry-After`, and `Login` returns `false` (nothing recorded) when 5 texts went out within
/// the hour or a live unused code went out under 30 s ago (else the login still texts).
async fn count_send(
    core: &Core,
    user: UserId,
    phone: &PhoneNumber,
    now: OffsetDateTime,
    limits: Limits,
) -> Result<bool, ApiError> {
    for _ in 0..10 {
        let current = core.codes.get_sms_log(user).await?;
        let expected = current.as_ref().map(|log| log.version);
        let mut log = current.unwrap_or(SmsLog {
            user_id: user,
            sent_at: Vec::new(),
            version: 0,
        });
        log.sent_at.retain(|at| now - *at < SEND_WINDOW);
        log.sent_at.sort();
        if let Some(wait) = wait_before_next_send(&log.sent_at, now) {
            match limits {
                Limits::Enforce => {
                    let millis = wait.whole_milliseconds().max(1);
                    let retry_after_secs = u64::try_from((millis + 999) / 1000).unwrap_or(u64::MAX);
                    return Err(ApiError::TooManyRequests { retry_after_secs });
                }
                Limits::Login => {
                    let window_full = log.sent_at.len() >= SENDS_PER_WINDOW;
                    if window_full || live_recent_code(core, user, phone, now).await? {
                        return Ok(false);
                    }
                }
            }
        }
        log.sent_at.push(now);
        // The limits never need more than the newest few.
        let excess = log.sent_at.len().saturating_sub(SENDS_PER_WINDOW);
        log.sent_at.drain(..excess);
        log.version += 1;
        match core.codes.put_sms_log(&log, expected).await {
            Err(StoreError::VersionConflict) => continue,
            other => return other.map(|()| true).map_err(ApiError::from),
        }
    }
    Err(ApiError::internal("SMS log update kept conflicting"))
}

/// Takes back a text counted at `at` that the provider did not send.
async fn uncount_send(core: &Core, user: UserId, at: OffsetDateTime) -> Result<(), ApiError> {
    for _ in 0..10 {
        let Some(mut log) = core.codes.get_sms_log(user).await? else {
            return Ok(());
        };
        let Some(index) = log.sent_at.iter().position(|sent| *sent == at) else {
            return Ok(());
        };
        let expected = log.version;
        log.sent_at.remove(index);
        log.version += 1;
        match core.codes.put_sms_log(&log, Some(expected)).await {
            Err(StoreError::VersionConflict) => continue,
            other => return Ok(other?),
        }
    }
    Err(ApiError::internal("SMS log update kept conflicting"))
}

/// The body of `POST /users/sessions/verify` and `DELETE /users/two-factor-auth`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CodeBody {
    code: Option<String>,
    /// Deprecated in the seed (a string there); accepted and ignored.
    #[serde(rename = "sessionUUID")]
    #[allow(dead_code)]
    session_uuid: Option<String>,
}

impl CodeBody {
    /// The code, trimmed; `None` when missing or blank.
    pub fn code(&self) -> Option<&str> {
        self.code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::App;
    use crate::domain::email::Email;
    use crate::notify::memory::MemoryCodeSender;
    use crate::security::password::Password;
    use crate::service::users::NewUser;

    const NUMBER: &str = "+14155550123";

    async fn app_and_user() -> (App, Arc<MemoryCodeSender>, User) {
        let sender = Arc::new(MemoryCodeSender::new());
        let mut app = App::in_memory();
        app.sms = sender.clone();
        let user = users::register(
            &app,
            NewUser {
                email: Email::parse("sms@example.com").unwrap(),
                password: Password::parse("correct horse").unwrap(),
                first_name: None,
                last_name: None,
                full_name: None,
                marketing_opt_in: false,
            },
        )
        .await
        .unwrap();
        (app, sender, user)
    }

    fn number() -> PhoneNumber {
        PhoneNumber::parse_e164(NUMBER).unwrap()
    }

    async fn fresh(app: &App, user: &User) -> User {
        users::find_live(app, user.id).await.unwrap().unwrap()
    }

    #[test]
    fn the_resend_limits_are_one_per_30_seconds_and_five_per_hour() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(wait_before_next_send(&[], now), None);
        let just_now = [now - Duration::seconds(10)];
        assert_eq!(
            wait_before_next_send(&just_now, now),
            Some(Duration::seconds(20))
        );
        let earlier = [now - Duration::seconds(30)];
        assert_eq!(wait_before_next_send(&earlier, now), None);
        let five: Vec<_> = (1..=5)
            .rev()
            .map(|m| now - Duration::minutes(m * 10))
            .collect();
        assert_eq!(
            wait_before_next_send(&five, now),
            Some(Duration::minutes(10))
        );
        assert_eq!(wait_before_next_send(&five[1..], now), None);
    }

    #[tokio::test]
    async fn enrolment_texts_a_code_and_verifying_it_enables_2fa() {
        let (app, sender, user) = app_and_user().await;
        let pending = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        assert_eq!(pending.pending_mobile.as_deref(), Some(NUMBER));
        let code = sender.last_code_to(NUMBER).unwrap();
        assert_eq!(
            sender.sent()[0].message,
            format!("Your verification code is {code}")
        );

        let (session, claims) = full_login(&app, &pending).await;
        let principal = Principal {
            user: pending,
            session,
            claims,
        };
        let verified = verify(&app, &principal, &code).await.unwrap();
        assert!(matches!(verified, Verified::Enabled(user) if user.two_factor_enabled()));
        let enabled = fresh(&app, &user).await;
        assert_eq!(
            (enabled.mobile.as_deref(), enabled.pending_mobile),
            (Some(NUMBER), None)
        );
    }

    async fn full_login(app: &App, user: &User) -> (Session, crate::security::jwt::Claims) {
        let tokens = sessions::open(app, user).await.unwrap();
        let claims = app.jwt.verify(&tokens.token, app.clock.now()).unwrap();
        let session = app
            .sessions
            .get_session(tokens.session_uuid)
            .await
            .unwrap()
            .unwrap();
        (session, claims)
    }

    #[test]
    fn the_deprecated_session_uuid_must_be_a_string_when_sent() {
        let parse = |body: serde_json::Value| {
            crate::http::from_object::<CodeBody>(body.as_object().unwrap().clone())
        };
        assert!(parse(serde_json::json!({"code": "1", "sessionUUID": "x"})).is_ok());
        assert!(parse(serde_json::json!({"code": "1", "sessionUUID": null})).is_ok());
        match parse(serde_json::json!({"code": "1", "sessionUUID": 5})) {
            Err(ApiError::Validation(fields)) => assert!(fields.contains_key("sessionUUID")),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a number was taken as a session uuid"),
        }
    }

    #[tokio::test]
    async fn a_provider_failure_stores_nothing_and_counts_nothing() {
        let (app, sender, user) = app_and_user().await;
        sender.set_failing(true);
        let result = enrol(&app, &*app.sms, &user, &number()).await;
        assert!(matches!(result, Err(ApiError::TwoFactorProvider)));
        assert_eq!(fresh(&app, &user).await, user);
        assert!(
            app.codes
                .get_sms_log(user.id)
                .await
                .unwrap()
                .unwrap()
                .sent_at
                .is_empty()
        );
        assert!(
            app.codes
                .take_attempt(user.id, app.clock.now(), MAX_ATTEMPTS)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_login_code_that_is_not_sent_takes_its_waiting_session_with_it() {
        let (app, sender, user) = app_and_user().await;
        let mut user = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        user.mobile = user.pending_mobile.take();
        let session = Session::new(
            user.id,
            user.session_epoch,
            Stage::TwoFactor,
            app.clock.now(),
        );
        app.sessions.create_session(&session).await.unwrap();
        // Past 30 s, so the login texts rather than keep the enrolment's live code.
        app.clock.advance(Duration::seconds(31));
        sender.set_failing(true);
        let result = send_login_code(&app, &*app.sms, &user, &session).await;
        assert!(matches!(result, Err(ApiError::TwoFactorProvider)));
        assert_eq!(app.sessions.get_session(session.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn five_wrong_codes_burn_the_code_and_a_new_text_ends_the_old_code() {
        let (app, sender, user) = app_and_user().await;
        let user = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        let first = sender.last_code_to(NUMBER).unwrap();
        let wrong = if first == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..MAX_ATTEMPTS {
            assert!(matches!(
                check_code(&app, user.id, wrong, NUMBER).await,
                Err(ApiError::CodeNotValid)
            ));
        }
        assert!(matches!(
            check_code(&app, user.id, &first, NUMBER).await,
            Err(ApiError::CodeNotValid)
        ));

        app.clock.advance(Duration::seconds(31));
        resend(&app, &*app.sms, &user, None).await.unwrap();
        let second = sender.last_code_to(NUMBER).unwrap();
        if second != first {
            assert!(check_code(&app, user.id, &first, NUMBER).await.is_err());
        }
        assert!(check_code(&app, user.id, &second, NUMBER).await.is_ok());
    }

    #[tokio::test]
    async fn codes_expire_after_ten_minutes() {
        let (app, sender, user) = app_and_user().await;
        let user = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        let code = sender.last_code_to(NUMBER).unwrap();
        app.clock.advance(CODE_LIFETIME);
        assert!(matches!(
            check_code(&app, user.id, &code, NUMBER).await,
            Err(ApiError::CodeNotValid)
        ));
    }

    #[tokio::test]
    async fn resends_and_enrolments_are_limited_alike() {
        let (app, _sender, user) = app_and_user().await;
        let user = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        match resend(&app, &*app.sms, &user, None).await {
            Err(ApiError::TooManyRequests { retry_after_secs }) => {
                assert!((1..=30).contains(&retry_after_secs))
            }
            other => panic!("expected 429, got {other:?}"),
        }
        for _ in 0..4 {
            app.clock.advance(Duration::seconds(31));
            resend(&app, &*app.sms, &user, Some(number()))
                .await
                .unwrap();
        }
        app.clock.advance(Duration::seconds(31));
        assert!(matches!(
            resend(&app, &*app.sms, &user, None).await,
            Err(ApiError::TooManyRequests { .. })
        ));
        assert!(matches!(
            enrol(&app, &*app.sms, &user, &number()).await,
            Err(ApiError::TooManyRequests { .. })
        ));
    }

    #[tokio::test]
    async fn numbers_off_the_allow_list_are_a_field_error_and_texted_nothing() {
        let (app, sender, user) = app_and_user().await;
        let jamaica = PhoneNumber::parse_e164("+18765550123").unwrap();
        match enrol(&app, &*app.sms, &user, &jamaica).await {
            Err(ApiError::Validation(fields)) => assert!(fields.contains_key("mobileCountryCode")),
            other => panic!("expected a field error, got {other:?}"),
        }
        assert!(sender.sent().is_empty());
        assert_eq!(fresh(&app, &user).await, user);
    }

    #[tokio::test]
    async fn past_the_daily_cap_nothing_is_texted_or_counted() {
        let (mut app, sender, user) = app_and_user().await;
        let mut config = (*app.core.config).clone();
        config.sms_daily_cap = 1;
        app.core.config = Arc::new(config);
        let user = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        app.clock.advance(Duration::seconds(31));
        assert!(matches!(
            resend(&app, &*app.sms, &user, None).await,
            Err(ApiError::TwoFactorProvider)
        ));
        assert_eq!(sender.sent().len(), 1);
        let log = app.codes.get_sms_log(user.id).await.unwrap().unwrap();
        assert_eq!(log.sent_at.len(), 1);
    }

    #[tokio::test]
    async fn a_login_keeps_a_live_code_under_30_seconds_old() {
        let (app, sender, user) = app_and_user().await;
        let mut user = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        user.mobile = user.pending_mobile.take();
        let session = Session::new(
            user.id,
            user.session_epoch,
            Stage::TwoFactor,
            app.clock.now(),
        );
        app.sessions.create_session(&session).await.unwrap();
        send_login_code(&app, &*app.sms, &user, &session)
            .await
            .unwrap();
        assert_eq!(sender.sent().len(), 1);
        app.clock.advance(Duration::seconds(31));
        send_login_code(&app, &*app.sms, &user, &session)
            .await
            .unwrap();
        assert_eq!(sender.sent().len(), 2);
    }

    #[tokio::test]
    async fn resending_to_a_number_not_on_file_is_a_field_error() {
        let (app, _sender, user) = app_and_user().await;
        assert!(matches!(
            resend(&app, &*app.sms, &user, None).await,
            Err(ApiError::Validation(_))
        ));
        let user = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        let other = PhoneNumber::parse_e164("+14155550199").unwrap();
        assert!(matches!(
            resend(&app, &*app.sms, &user, Some(other)).await,
            Err(ApiError::Validation(_))
        ));
    }

    #[tokio::test]
    async fn removing_verified_2fa_needs_a_code_but_pending_2fa_does_not() {
        let (app, sender, user) = app_and_user().await;
        let pending = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        let (session, claims) = full_login(&app, &pending).await;
        let as_caller = |user: User| Principal {
            user,
            session: session.clone(),
            claims: claims.clone(),
        };
        remove_own(&app, &*app.mailer, &as_caller(pending), None)
            .await
            .unwrap();
        assert_eq!(fresh(&app, &user).await.pending_mobile, None);

        app.clock.advance(Duration::seconds(31));
        let pending = enrol(&app, &*app.sms, &user, &number()).await.unwrap();
        let code = sender.last_code_to(NUMBER).unwrap();
        verify(&app, &as_caller(pending), &code).await.unwrap();
        let enabled = fresh(&app, &user).await;
        assert!(matches!(
            remove_own(&app, &*app.mailer, &as_caller(enabled.clone()), None).await,
            Err(ApiError::CodeNotValid)
        ));

        app.clock.advance(Duration::seconds(31));
        resend(&app, &*app.sms, &enabled, None).await.unwrap();
        let code = sender.last_code_to(NUMBER).unwrap();
        remove_own(&app, &*app.mailer, &as_caller(enabled), Some(&code))
            .await
            .unwrap();
        let removed = fresh(&app, &user).await;
        assert_eq!((removed.mobile, removed.pending_mobile), (None, None));
    }
}

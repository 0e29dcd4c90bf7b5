//! Second-factor codes of every kind (an authenticator app's, a texted one, a recovery code):
//! checking one against the user's guard, saving what it proves, and what goes with a factor
//! removed (the recovery codes, the security notice).
//!
//! Every check is counted as a failure in the user's [`FactorGuard`] before it is made, by a
//! versioned write, so however many guesses race none passes the limits: 5 wrong TOTP or
//! recovery codes within 15 minutes close the window to both, 100 consecutive wrong codes of
//! any kind refuse every code until a password reset or a csrAdmin's 2FA removal. A right code
//! gives its count back; an authenticator-app code also moves the last accepted time step
//! forward in that write, so each step is accepted once, on every route.

use time::Duration;

use crate::ApiError;
use crate::app::Core;
use crate::domain::StoreError;
use crate::domain::code::{CodeChange, FactorGuard, OneTimeCode};
use crate::domain::ids::UserId;
use crate::domain::mail::{Mail, Mailer, RemovedFactor};
use crate::domain::security_event::{Cause, EventType};
use crate::domain::user::User;
use crate::security::recovery_codes::{self, RecoveryCode};
use crate::security::totp::TotpSecret;
use crate::service::{two_factor, users};

/// What a right code proved.
#[derive(Debug)]
pub enum Proof {
    /// A code of the authenticator app, its time step now used up.
    Totp,
    /// The live texted code: the caller uses it up with its change.
    Sms(OneTimeCode),
    /// A recovery code, by its stored HMAC: the caller removes it with its change
    /// ([`spend_recovery_code`]).
    Recovery(String),
}

/// The kinds of code a route takes.
#[derive(Clone, Copy, Debug)]
pub struct Accept<'a> {
    /// The sealed secret whose codes are taken.
    pub totp: Option<&'a str>,
    /// The number a texted code must have been sent to.
    pub sms: Option<&'a str>,
    pub recovery: bool,
}

impl<'a> Accept<'a> {
    /// What a 2FA login or removing a factor takes: a code of the active app, one texted to
    /// the verified number, or a recovery code.
    pub fn any(user: &'a User) -> Self {
        Self {
            totp: user.factors.totp_secret.as_deref(),
            sms: user.mobile.as_deref(),
            recovery: true,
        }
    }

    /// Only a code texted to `phone` (activating a pending number).
    pub fn sms(phone: &'a str) -> Self {
        Self {
            totp: None,
            sms: Some(phone),
            recovery: false,
        }
    }

    /// Only a code of the app sealed as `sealed` (activating a pending app).
    pub fn totp(sealed: &'a str) -> Self {
        Self {
            totp: Some(sealed),
            sms: None,
            recovery: false,
        }
    }
}

/// Checks `code` as every kind `accept` takes, within the user's limits. A wrong code, a
/// replayed step, a used recovery code, a closed window or a locked guard are all 400
/// "Code is not valid.…"; input that can be no accepted kind of code is that 400 and counts
/// nothing.
pub async fn check(
    core: &Core,
    user: &User,
    code: &str,
    accept: Accept<'_>,
) -> Result<Proof, ApiError> {
    let code = code.trim();
    let six_digits = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
    let totp = accept.totp.filter(|_| six_digits);
    let sms = accept.sms.filter(|_| six_digits);
    let recovery = RecoveryCode::parse(code)
        .filter(|_| accept.recovery && !user.factors.recovery_codes.is_empty());
    if totp.is_none() && sms.is_none() && recovery.is_none() {
        return Err(ApiError::CodeNotValid);
    }
    let reservation = reserve(
        core,
        user.id,
        totp.is_some() || recovery.is_some(),
        sms.is_some(),
    )
    .await?;
    if reservation.windowed {
        if let Some(sealed) = totp {
            let now = u64::try_from(core.clock.now().unix_timestamp()).unwrap_or(0);
            let secret = open_totp(core, user.id, sealed)?;
            if let Some(step) = secret.verify(code, now, reservation.guard.last_step) {
                release(core, &reservation, Some(step)).await?;
                return Ok(Proof::Totp);
            }
        }
        if let Some(candidate) = &recovery
            && let Some(index) =
                recovery_codes::find(candidate, &core.hmac_key, &user.factors.recovery_codes)
        {
            release(core, &reservation, None).await?;
            return Ok(Proof::Recovery(user.factors.recovery_codes[index].clone()));
        }
    }
    if let Some(phone) = sms {
        match two_factor::check_code(core, user.id, code, phone).await {
            Ok(live) => {
                release(core, &reservation, None).await?;
                return Ok(Proof::Sms(live));
            }
            Err(ApiError::CodeNotValid) => {}
            Err(other) => return Err(other),
        }
    }
    tracing::info!(user = %user.id, "wrong second-factor code");
    Err(ApiError::CodeNotValid)
}

/// A check counted in the guard, as stored.
struct Reservation {
    guard: FactorGuard,
    /// It may check a TOTP or recovery code (it counts in the window).
    windowed: bool,
}

/// Counts a check before it is made. `windowed`: the code may be a TOTP or recovery code;
/// `other`: it may be a texted code, which the window does not close.
async fn reserve(
    core: &Core,
    user: UserId,
    windowed: bool,
    other: bool,
) -> Result<Reservation, ApiError> {
    // Each racing check can lose to every other one once.
    for _ in 0..100 {
        let stored = core.codes.get_factor_guard(user).await?;
        let expected = stored.as_ref().map(|guard| guard.version);
        let mut guard = stored.unwrap_or_else(|| FactorGuard::new(user));
        if guard.locked() {
            tracing::warn!(%user, "second-factor code refused: too many consecutive wrong codes");
            return Err(ApiError::CodeNotValid);
        }
        let now = core.clock.now();
        let windowed = windowed && guard.window_open(now);
        if !windowed && !other {
            tracing::info!(%user, "second-factor code refused: 5 wrong codes within 15 minutes");
            return Err(ApiError::CodeNotValid);
        }
        guard.reserve(windowed, now);
        guard.version += 1;
        match core.codes.put_factor_guard(&guard, expected).await {
            Ok(()) => return Ok(Reservation { guard, windowed }),
            Err(StoreError::VersionConflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::internal("second-factor guard kept conflicting"))
}

/// A right code: gives its count back and, for an app's code, uses its `step` up (a step no
/// later than the last accepted one, taken by a racing request, is the 400).
async fn release(
    core: &Core,
    reservation: &Reservation,
    step: Option<u64>,
) -> Result<(), ApiError> {
    let mut current = reservation.guard.clone();
    for _ in 0..100 {
        let mut next = current.clone();
        if let Some(step) = step {
            if next.last_step.is_some_and(|last| last >= step) {
                return Err(ApiError::CodeNotValid);
            }
            next.last_step = Some(step);
        }
        next.succeed(reservation.windowed, reservation.guard.window_start);
        next.version = current.version + 1;
        match core
            .codes
            .put_factor_guard(&next, Some(current.version))
            .await
        {
            Ok(()) => return Ok(()),
            Err(StoreError::VersionConflict) => {
                current = core
                    .codes
                    .get_factor_guard(reservation.guard.user_id)
                    .await?
                    .ok_or_else(|| ApiError::internal("second-factor guard vanished"))?;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::internal("second-factor guard kept conflicting"))
}

/// Forgets every wrong code of the user (a password reset, a csrAdmin's 2FA removal); the
/// last accepted step stays.
pub async fn forgive(core: &Core, user: UserId) -> Result<(), ApiError> {
    for _ in 0..10 {
        let Some(current) = core.codes.get_factor_guard(user).await? else {
            return Ok(());
        };
        let mut next = current.clone();
        next.forgive();
        if next == current {
            return Ok(());
        }
        next.version = current.version + 1;
        match core
            .codes
            .put_factor_guard(&next, Some(current.version))
            .await
        {
            Ok(()) => return Ok(()),
            Err(StoreError::VersionConflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::internal("second-factor guard kept conflicting"))
}

/// The associated data a user's app secret is sealed with: it opens for this user only.
fn totp_owner(user: UserId) -> String {
    format!("totp:{user}")
}

/// Seals an app secret of `user` for storage.
pub fn seal_totp(core: &Core, user: UserId, secret: &TotpSecret) -> String {
    core.totp_box
        .seal(secret.as_bytes(), totp_owner(user).as_bytes())
}

fn open_totp(core: &Core, user: UserId, sealed: &str) -> Result<TotpSecret, ApiError> {
    core.totp_box
        .open(sealed, totp_owner(user).as_bytes())
        .ok()
        .and_then(|bytes| TotpSecret::from_bytes(&bytes))
        .ok_or_else(|| ApiError::internal("a stored authenticator-app secret does not open"))
}

/// Removes the recovery code stored as `hmac` from `user` (a save's change): 400 "Code is not
/// valid.…" when a racing request used it first. Returns the event of its use.
pub fn spend_recovery_code(user: &mut User, hmac: &str) -> Result<Vec<EventType>, ApiError> {
    let codes = &mut user.factors.recovery_codes;
    let index = codes
        .iter()
        .position(|stored| stored == hmac)
        .ok_or(ApiError::CodeNotValid)?;
    codes.remove(index);
    Ok(vec![EventType::RecoveryCodeUsed])
}

/// Recovery codes live only beside an active factor: removing the last one deletes them.
pub fn drop_recovery_codes_without_factor(user: &mut User) {
    if !user.two_factor_enabled() {
        user.factors.recovery_codes.clear();
    }
}

/// Applies `change` to the live user and saves it, in one transaction, with `code` applied to
/// the user's texted code (when given) and the events: first those `change` returns, then
/// those of what changed ([`Cause::events`]). Retried on a concurrent write, `change` seeing
/// fresh data each time; a texted code used or replaced meanwhile is 400 "Code is not
/// valid.…". Returns the saved user and the one it replaced.
pub async fn save<F>(
    core: &Core,
    id: UserId,
    cause: &Cause,
    code: Option<CodeChange<'_>>,
    mut change: F,
) -> Result<(User, User), ApiError>
where
    F: FnMut(&mut User) -> Result<Vec<EventType>, ApiError>,
{
    for _ in 0..5 {
        let previous = users::find_live(core, id)
            .await?
            .ok_or(ApiError::UserNotFound)?;
        let mut user = previous.clone();
        let extra = change(&mut user)?;
        let now = core.clock.now();
        user.version = previous.version + 1;
        user.updated_at = now;
        // A microsecond apart, so that they list in the order they happened.
        let mut events: Vec<_> = extra
            .iter()
            .zip(0..)
            .map(|(kind, i)| cause.event(id, *kind, now + Duration::microseconds(i)))
            .collect();
        let later = now + Duration::microseconds(extra.len() as i64);
        events.extend(cause.events(&previous, &user, later));
        let saved = match code {
            Some(code) => {
                core.codes
                    .save_user_with_code(&user, &previous, code, &events)
                    .await
            }
            None => {
                core.users
                    .save_user_recording(&user, &previous, None, &events)
                    .await
            }
        };
        match saved {
            Ok(()) => return Ok((user, previous)),
            Err(StoreError::VersionConflict) => continue,
            Err(StoreError::NotFound) => return Err(ApiError::CodeNotValid),
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::VersionConflict)
}

/// Mails the security notice when the save from `previous` to `saved` removed a verified
/// number or an active app. Never capped; a failure is logged, the removal stands.
pub async fn notify_removed(mailer: &dyn Mailer, previous: &User, saved: &User) {
    let mut removed = Vec::new();
    if previous.mobile.is_some() && saved.mobile.is_none() {
        removed.push(RemovedFactor::PhoneNumber);
    }
    if previous.totp_enabled() && !saved.totp_enabled() {
        removed.push(RemovedFactor::AuthenticatorApp);
    }
    if removed.is_empty() {
        return;
    }
    if let Err(error) = mailer
        .send(&Mail::second_factor_removed(&saved.email, &removed))
        .await
    {
        tracing::error!(user = %saved.id, %error, "the second-factor-removed notice could not be sent");
    }
}

//! Login lockout per email: the 5th failure within 15 minutes locks the email for 30 s; each
//! failure after a lock ends locks it again for twice as long, up to 15 minutes; a success
//! resets it. Unknown emails are counted too, so the lockout reveals nothing.
//!
//! An attempt on an existing account is recorded as `login.failed` (and `login.locked` when it
//! locks the email) in the very write that reserves it, before the password is checked: an
//! attempt is a failure until it is found right, in the events as in the lockout's count, and
//! a success withdraws both in one write. So a wrong password costs what an unknown email
//! does (one write before the hash, none after; an unknown email's write carries decoys of
//! those events, so it is the same transaction) and each lock is recorded once, by the write
//! that set it.

use time::{Duration, OffsetDateTime};

use crate::ApiError;
use crate::app::Core;
use crate::domain::StoreError;
use crate::domain::ids::UserId;
use crate::domain::lockout::Lockout;
use crate::domain::security_event::{Cause, EventType, SecurityEvent};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::minutes(15);
pub const FIRST_LOCK_SECS: i64 = 30;
pub const MAX_LOCK_SECS: i64 = 15 * 60;

/// Reserves one login attempt for the email before the password is checked: 429 with
/// `Retry-After` while it is locked (and nothing counted); otherwise the attempt is written as
/// a failure first, in one write conditioned on the state it was computed from, so a lock
/// and the attempt that causes it are decided together. However many wrong passwords race,
/// at most [`MAX_FAILURES`] get through to the hash before the lock stands; a concurrent
/// writer makes the write fail and the attempt is decided again on the new state. A password
/// success then hands the attempt to [`succeeded`].
///
/// `account` is the user holding the email, if any, and who attempts: their events are
/// recorded with the reservation (an unknown email records none, in a write of the same
/// shape: its decoys are never read).
pub async fn reserve(
    core: &Core,
    email_key: &str,
    account: Option<(UserId, &Cause)>,
) -> Result<Attempt, ApiError> {
    let current = core.lockouts.get_lockout(email_key).await?;
    reserve_seen(core, email_key, account, current).await
}

/// [`reserve`] from the lockout `seen` (read by the caller, e.g. with the email's claim in one
/// request); after a conflicting write the state is read again.
pub async fn reserve_seen(
    core: &Core,
    email_key: &str,
    account: Option<(UserId, &Cause)>,
    seen: Option<Lockout>,
) -> Result<Attempt, ApiError> {
    let mut seen = Some(seen);
    for _ in 0..2 * MAX_FAILURES + 2 {
        let current = match seen.take() {
            Some(current) => current,
            None => core.lockouts.get_lockout(email_key).await?,
        };
        let now = core.clock.now();
        if let Some(until) = current.as_ref().and_then(|l| l.locked_until)
            && until > now
        {
            let retry_after_secs = (until - now).whole_seconds().max(1) as u64;
            return Err(ApiError::TooManyRequests { retry_after_secs });
        }
        let expected = current.as_ref().map(|l| l.version);
        let next = next_state(current, email_key, now);
        // An unknown email writes decoys of the events an account's attempt records, under a
        // user id no account has: the same write, so the same time.
        let (recorded, decoys) = match account {
            Some((user, cause)) => (failure_events(&next, user, cause, now), Vec::new()),
            None => (
                Vec::new(),
                failure_events(&next, UserId::new(), &Cause::default(), now),
            ),
        };
        match core
            .lockouts
            .put_lockout_recording(&next, expected, &recorded, &decoys)
            .await
        {
            Ok(()) => {
                return Ok(Attempt {
                    email_key: email_key.to_owned(),
                    recorded,
                });
            }
            Err(StoreError::VersionConflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::internal("lockout reservation kept conflicting"))
}

/// A login attempt reserved as a failure, and the events recorded with it.
#[derive(Debug)]
#[must_use = "a right password hands the attempt to `succeeded`"]
pub struct Attempt {
    email_key: String,
    recorded: Vec<SecurityEvent>,
}

impl Attempt {
    /// The email whose lockout a success clears.
    pub fn email_key(&self) -> &str {
        &self.email_key
    }

    /// The events recorded with the reservation, which a success withdraws.
    pub fn recorded(&self) -> &[SecurityEvent] {
        &self.recorded
    }
}

/// `login.failed` of the attempt that leads to `next`, and `login.locked` when it locks the
/// email: the email was not locked when the attempt came (that is a 429, not an attempt), so
/// a lock in `next` is the one this attempt sets.
fn failure_events(
    next: &Lockout,
    user: UserId,
    cause: &Cause,
    now: OffsetDateTime,
) -> Vec<SecurityEvent> {
    let mut events = vec![cause.event(user, EventType::LoginFailed, now)];
    if next.locked_until.is_some_and(|until| until > now) {
        events.push(cause.event(
            user,
            EventType::LoginLocked,
            now + Duration::microseconds(1),
        ));
    }
    events
}

/// The password of `attempt` was right: forgets the email's failures (this attempt's
/// included) and withdraws the events recorded with it, in one write.
pub async fn succeeded(core: &Core, attempt: Attempt) -> Result<(), ApiError> {
    for _ in 0..5 {
        match core
            .lockouts
            .clear_lockout_withdrawing(&attempt.email_key, &attempt.recorded)
            .await
        {
            // Only a concurrent transaction on the same items: try again.
            Err(StoreError::VersionConflict) => continue,
            other => return Ok(other?),
        }
    }
    Err(ApiError::internal("lockout reset kept conflicting"))
}

/// Counts one failed attempt that was not reserved (a wrong password outside login),
/// optimistically, retried on concurrent writes.
pub async fn failed(core: &Core, email_key: &str) -> Result<(), ApiError> {
    for _ in 0..10 {
        let current = core.lockouts.get_lockout(email_key).await?;
        let expected = current.as_ref().map(|l| l.version);
        let next = next_state(current, email_key, core.clock.now());
        match core.lockouts.put_lockout(&next, expected).await {
            Err(StoreError::VersionConflict) => continue,
            other => return Ok(other?),
        }
    }
    Err(ApiError::internal("lockout update kept conflicting"))
}

fn next_state(current: Option<Lockout>, email_key: &str, now: OffsetDateTime) -> Lockout {
    let fresh = Lockout {
        email_key: email_key.to_owned(),
        failures: 0,
        window_start: now,
        last_failure_at: now,
        locked_until: None,
        lock_secs: 0,
        version: 0,
    };
    let mut state = match current {
        // Escalation is forgotten once a whole window passes without failures.
        Some(old) if now - old.last_failure_at <= WINDOW => old,
        Some(old) => Lockout {
            version: old.version,
            ..fresh
        },
        None => fresh,
    };
    state.version += 1;
    state.last_failure_at = now;
    if state.lock_secs > 0 {
        // A failure after a lock ended locks again, twice as long.
        state.lock_secs = (state.lock_secs * 2).min(MAX_LOCK_SECS);
        state.locked_until = Some(now + Duration::seconds(state.lock_secs));
        return state;
    }
    if now - state.window_start > WINDOW {
        state.window_start = now;
        state.failures = 0;
    }
    state.failures += 1;
    if state.failures >= MAX_FAILURES {
        state.lock_secs = FIRST_LOCK_SECS;
        state.locked_until = Some(now + Duration::seconds(FIRST_LOCK_SECS));
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifth_failure_locks_for_thirty_seconds_then_doubles() {
        let t0 = OffsetDateTime::now_utc();
        let mut state = None;
        for i in 0..5 {
            let next = next_state(state, "a@b.co", t0 + Duration::seconds(i));
            state = Some(next);
        }
        let locked = state.clone().unwrap();
        assert_eq!(locked.lock_secs, 30);
        assert_eq!(locked.locked_until, Some(t0 + Duration::seconds(4 + 30)));
        let after_lock = next_state(state, "a@b.co", t0 + Duration::seconds(40));
        assert_eq!(after_lock.lock_secs, 60);
        let mut state = Some(after_lock);
        for step in 0..6 {
            state = Some(next_state(
                state,
                "a@b.co",
                t0 + Duration::minutes(2 + step * 14),
            ));
        }
        assert_eq!(state.unwrap().lock_secs, MAX_LOCK_SECS);
    }

    #[test]
    fn four_failures_do_not_lock() {
        let t0 = OffsetDateTime::now_utc();
        let mut state = None;
        for i in 0..4 {
            state = Some(next_state(state, "a@b.co", t0 + Duration::seconds(i)));
        }
        assert_eq!(state.unwrap().locked_until, None);
    }
}

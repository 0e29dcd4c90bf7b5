//! The storage port for two-factor codes, SMS send logs and the second-factor guard. The
//! DynamoDB adapter is `dynamo::codes`, the in-memory one `memory::codes`; `code_contract`
//! runs against both.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::StoreError;
use crate::domain::ids::UserId;
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::User;

/// A code texted for two-factor auth. A user has at most one: storing a new one ends the
/// previous. The code itself is never stored, only its HMAC.
#[derive(Clone, Debug, PartialEq)]
pub struct OneTimeCode {
    pub user_id: UserId,
    /// Random per code, so using a code can never remove a newer one that replaced it.
    pub id: String,
    pub hmac: String,
    /// The E.164 number it was texted to: a right code proves that number.
    pub phone: String,
    pub expires_at: OffsetDateTime,
    /// Checks spent on it so far.
    pub attempts: u32,
}

/// When codes were texted to one user, newest last (the resend limits count the last hour).
#[derive(Clone, Debug, PartialEq)]
pub struct SmsLog {
    pub user_id: UserId,
    pub sent_at: Vec<OffsetDateTime>,
    pub version: u64,
}

/// Wrong TOTP or recovery codes within this window…
pub const FACTOR_WINDOW: Duration = Duration::minutes(15);
/// …at most this many, then every TOTP and recovery code is refused until the window passed.
pub const FACTOR_WINDOW_FAILURES: u32 = 5;
/// Consecutive wrong second-factor codes of any kind before every code is refused until a
/// password reset or a csrAdmin's 2FA removal.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 100;

/// One user's guard against guessing second-factor codes, and the last authenticator-app time
/// step accepted (each step is accepted once). A check is counted as a failure before it is
/// made (so racing guesses cannot pass the limits) and a right code gives its count back.
#[derive(Clone, Debug, PartialEq)]
pub struct FactorGuard {
    pub user_id: UserId,
    /// When the current window of TOTP and recovery-code failures began.
    pub window_start: Option<OffsetDateTime>,
    pub window_failures: u32,
    /// Wrong codes of any kind since the last right one (or reset).
    pub consecutive_failures: u32,
    pub last_step: Option<u64>,
    /// 0 for a guard not stored yet.
    pub version: u64,
}

impl FactorGuard {
    pub fn new(user_id: UserId) -> Self {
        Self {
            user_id,
            window_start: None,
            window_failures: 0,
            consecutive_failures: 0,
            last_step: None,
            version: 0,
        }
    }

    /// Every second-factor code is refused.
    pub fn locked(&self) -> bool {
        self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES
    }

    fn window_current(&self, now: OffsetDateTime) -> bool {
        self.window_start
            .is_some_and(|start| now - start < FACTOR_WINDOW)
    }

    /// TOTP and recovery codes may be checked at `now`.
    pub fn window_open(&self, now: OffsetDateTime) -> bool {
        !self.window_current(now) || self.window_failures < FACTOR_WINDOW_FAILURES
    }

    /// Counts a check as a failure before it is made; `windowed` for a TOTP or recovery code
    /// (the caller has seen [`Self::window_open`]).
    pub fn reserve(&mut self, windowed: bool, now: OffsetDateTime) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if windowed {
            if !self.window_current(now) {
                self.window_start = Some(now);
                self.window_failures = 0;
            }
            self.window_failures += 1;
        }
    }

    /// A right code: the consecutive count starts again, and a windowed check counted in the
    /// window that began at `window_start` is given back.
    pub fn succeed(&mut self, windowed: bool, window_start: Option<OffsetDateTime>) {
        self.consecutive_failures = 0;
        if windowed && window_start.is_some() && self.window_start == window_start {
            self.window_failures = self.window_failures.saturating_sub(1);
        }
    }

    /// A password reset or a csrAdmin's 2FA removal: every failure forgotten (the last
    /// accepted step stays, so no code is accepted twice).
    pub fn forgive(&mut self) {
        self.window_start = None;
        self.window_failures = 0;
        self.consecutive_failures = 0;
    }
}

/// What a user save does to the user's code, in the same transaction.
#[derive(Clone, Copy, Debug)]
pub enum CodeChange<'a> {
    /// Stores this code, ending any previous one.
    Put(&'a OneTimeCode),
    /// Uses up the code with this id; the save fails with `NotFound` if it is gone or was
    /// replaced.
    Consume(&'a str),
    /// Removes whatever code the user has.
    Delete,
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    /// The user's code as stored (expired or spent included), without spending a check.
    async fn get_code(&self, user: UserId) -> Result<Option<OneTimeCode>, StoreError>;

    /// Stores the user's code, ending any previous one.
    async fn put_code(&self, code: &OneTimeCode) -> Result<(), StoreError>;

    /// Spends one check of the user's live code and returns it (with the check counted),
    /// atomically: however many callers race, at most `max_attempts` checks of one code
    /// ever succeed. `None` when no code is live at `now`: none, expired, or spent.
    async fn take_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<Option<OneTimeCode>, StoreError>;

    /// Uses up the code if it is still the one with `code_id`: `false` if it is gone or was
    /// replaced (so of two racing uses of one code, one wins).
    async fn consume_code(&self, user: UserId, code_id: &str) -> Result<bool, StoreError>;

    /// Saves `user` over `previous`, applies `change` to the user's code and records `events`,
    /// in one transaction. The user is saved only if its stored version is still
    /// `previous.version` (`VersionConflict` otherwise). The change must keep the email and
    /// the status.
    async fn save_user_with_code(
        &self,
        user: &User,
        previous: &User,
        change: CodeChange<'_>,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError>;

    /// Counts one text against the service-wide cap of the UTC day `day` (`YYYY-MM-DD`),
    /// atomically: `false`, and nothing counted, once `cap` texts were counted that day.
    async fn take_daily_sms(&self, day: &str, cap: u32) -> Result<bool, StoreError>;

    /// Takes back one text counted on `day` that was not sent after all.
    async fn return_daily_sms(&self, day: &str) -> Result<(), StoreError>;

    async fn get_sms_log(&self, user: UserId) -> Result<Option<SmsLog>, StoreError>;

    /// Writes the log if the stored one still has `expected_version` (`None`: if there is
    /// none). `VersionConflict` otherwise.
    async fn put_sms_log(
        &self,
        log: &SmsLog,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;

    /// The user's guard, by a strongly consistent read; `None` before the first check.
    async fn get_factor_guard(&self, user: UserId) -> Result<Option<FactorGuard>, StoreError>;

    /// Writes the guard if the stored one still has `expected_version` (`None`: if there is
    /// none). `VersionConflict` otherwise.
    async fn put_factor_guard(
        &self,
        guard: &FactorGuard,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> FactorGuard {
        FactorGuard::new(UserId::new())
    }

    #[test]
    fn five_failures_within_the_window_close_it_until_it_has_passed() {
        let now = OffsetDateTime::now_utc();
        let mut guard = guard();
        for _ in 0..FACTOR_WINDOW_FAILURES {
            assert!(guard.window_open(now));
            guard.reserve(true, now);
        }
        assert!(!guard.window_open(now + Duration::minutes(14)));
        assert!(guard.window_open(now + FACTOR_WINDOW));
        guard.reserve(true, now + FACTOR_WINDOW);
        assert_eq!(guard.window_failures, 1);
    }

    #[test]
    fn a_success_gives_back_its_own_check_and_ends_the_consecutive_run() {
        let now = OffsetDateTime::now_utc();
        let mut guard = guard();
        guard.reserve(true, now);
        guard.reserve(true, now);
        let start = guard.window_start;
        guard.succeed(true, start);
        assert_eq!((guard.window_failures, guard.consecutive_failures), (1, 0));
        // A check counted in a window that has since been replaced gives nothing back.
        guard.reserve(true, now + FACTOR_WINDOW);
        guard.succeed(true, start);
        assert_eq!(guard.window_failures, 1);
    }

    #[test]
    fn sms_checks_count_only_toward_the_consecutive_limit() {
        let now = OffsetDateTime::now_utc();
        let mut guard = guard();
        for _ in 0..MAX_CONSECUTIVE_FAILURES {
            assert!(!guard.locked());
            guard.reserve(false, now);
        }
        assert!(guard.locked());
        assert_eq!(guard.window_failures, 0);
        assert!(guard.window_open(now));
        guard.last_step = Some(7);
        guard.forgive();
        assert!(!guard.locked());
        assert_eq!(guard.last_step, Some(7));
    }
}

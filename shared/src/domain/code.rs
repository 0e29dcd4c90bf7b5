//! The storage port for two-factor codes and SMS send logs. The DynamoDB adapter is
//! `dynamo::codes`, the in-memory one `memory::codes`; `code_contract` runs against both.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::ids::UserId;
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

    /// Saves `user` over `previous` and applies `change` to the user's code, in one
    /// transaction. The user is saved only if its stored version is still `previous.version`
    /// (`VersionConflict` otherwise). The change must keep the email and the status.
    async fn save_user_with_code(
        &self,
        user: &User,
        previous: &User,
        change: CodeChange<'_>,
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
}

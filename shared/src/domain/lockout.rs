//! Failed-login bookkeeping for one email, and its port.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use super::ids::UserId;
use super::security_event::SecurityEvent;

/// Failed-login bookkeeping for one email.
#[derive(Clone, Debug, PartialEq)]
pub struct Lockout {
    pub email_key: String,
    pub failures: u32,
    pub window_start: OffsetDateTime,
    pub last_failure_at: OffsetDateTime,
    pub locked_until: Option<OffsetDateTime>,
    /// Length of the latest lock; 0 before the first.
    pub lock_secs: i64,
    pub version: u64,
}

#[async_trait]
pub trait LockoutStore: Send + Sync {
    async fn get_lockout(&self, email_key: &str) -> Result<Option<Lockout>, StoreError>;

    /// The user id the claim of `claim_key` (a normalised email) names, whoever holds it,
    /// and the lockout of `email_key`, in one consistent read: a login's first request.
    async fn find_claim_and_lockout(
        &self,
        claim_key: &str,
        email_key: &str,
    ) -> Result<(Option<UserId>, Option<Lockout>), StoreError>;

    /// Writes the lockout if the stored one still has `expected_version`
    /// (`None`: if there is none). `VersionConflict` otherwise.
    async fn put_lockout(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;

    async fn clear_lockout(&self, email_key: &str) -> Result<(), StoreError>;

    /// [`LockoutStore::put_lockout`], recording `events` in the same write. `decoys` are
    /// written in it too, as events of a user id no account has, kept an hour and never read:
    /// an attempt on an unknown email (no account, no event) passes decoys of the events an
    /// account's attempt would record, so its write has the same shape and costs the same
    /// time. A store that no one times may leave them out.
    async fn put_lockout_recording(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
        events: &[SecurityEvent],
        decoys: &[SecurityEvent],
    ) -> Result<(), StoreError>;

    /// Clears the lockout and deletes `events` (recorded with the attempt that turned out
    /// right), in one write. `VersionConflict` when a concurrent write got in the way.
    async fn clear_lockout_withdrawing(
        &self,
        email_key: &str,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError>;
}

//! Failed-login bookkeeping for one email, and its port.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
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

    /// Writes the lockout if the stored one still has `expected_version`
    /// (`None`: if there is none). `VersionConflict` otherwise.
    async fn put_lockout(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;

    async fn clear_lockout(&self, email_key: &str) -> Result<(), StoreError>;

    /// [`LockoutStore::put_lockout`], recording `events` in the same write. It is one
    /// transaction whether or not there are events, so that a login attempt of an unknown
    /// email (no account, no event) costs what one of an existing account does.
    async fn put_lockout_recording(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError>;

    /// Clears the lockout and deletes `events` (recorded with the attempt that turned out
    /// right), in one write. `VersionConflict` when a concurrent write got in the way.
    async fn clear_lockout_withdrawing(
        &self,
        email_key: &str,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError>;
}

//! Failed-login bookkeeping for one email, and its port.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

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
}

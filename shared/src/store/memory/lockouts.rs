//! `LockoutStore` in memory.

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::StoreError;
use crate::domain::ids::UserId;
use crate::domain::lockout::{Lockout, LockoutStore};
use crate::domain::security_event::SecurityEvent;

#[async_trait]
impl LockoutStore for MemoryStore {
    async fn get_lockout(&self, email_key: &str) -> Result<Option<Lockout>, StoreError> {
        Ok(self.lockouts.lock().unwrap().get(email_key).cloned())
    }

    async fn find_claim_and_lockout(
        &self,
        claim_key: &str,
        email_key: &str,
    ) -> Result<(Option<UserId>, Option<Lockout>), StoreError> {
        let claimed = self.claimed_by(claim_key);
        Ok((claimed, self.get_lockout(email_key).await?))
    }

    async fn put_lockout(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut lockouts = self.lockouts.lock().unwrap();
        if lockouts.get(&lockout.email_key).map(|l| l.version) != expected_version {
            return Err(StoreError::VersionConflict);
        }
        lockouts.insert(lockout.email_key.clone(), lockout.clone());
        Ok(())
    }

    async fn clear_lockout(&self, email_key: &str) -> Result<(), StoreError> {
        self.lockouts.lock().unwrap().remove(email_key);
        Ok(())
    }

    async fn put_lockout_recording(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
        events: &[SecurityEvent],
        _decoys: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        self.put_lockout(lockout, expected_version).await?;
        self.record_all(events);
        Ok(())
    }

    async fn clear_lockout_withdrawing(
        &self,
        email_key: &str,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        self.clear_lockout(email_key).await?;
        self.forget_all(events);
        Ok(())
    }
}

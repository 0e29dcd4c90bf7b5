//! `CodeStore` in memory, with the same contract as the DynamoDB adapter.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::domain::StoreError;
use crate::domain::code::{CodeChange, CodeStore, FactorGuard, OneTimeCode, SmsLog};
use crate::domain::ids::UserId;
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::User;

#[async_trait]
impl CodeStore for MemoryStore {
    async fn get_code(&self, user: UserId) -> Result<Option<OneTimeCode>, StoreError> {
        Ok(self.codes.lock().unwrap().get(&user).cloned())
    }

    async fn put_code(&self, code: &OneTimeCode) -> Result<(), StoreError> {
        self.codes
            .lock()
            .unwrap()
            .insert(code.user_id, code.clone());
        Ok(())
    }

    async fn take_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<Option<OneTimeCode>, StoreError> {
        let mut codes = self.codes.lock().unwrap();
        Ok(codes
            .get_mut(&user)
            .filter(|code| code.attempts < max_attempts && code.expires_at > now)
            .map(|code| {
                code.attempts += 1;
                code.clone()
            }))
    }

    async fn consume_code(&self, user: UserId, code_id: &str) -> Result<bool, StoreError> {
        let mut codes = self.codes.lock().unwrap();
        if codes.get(&user).is_some_and(|code| code.id == code_id) {
            codes.remove(&user);
            return Ok(true);
        }
        Ok(false)
    }

    async fn save_user_with_code(
        &self,
        user: &User,
        previous: &User,
        change: CodeChange<'_>,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        if user.email_key() != previous.email_key() || user.status != previous.status {
            return Err(StoreError::Backend(
                "a save with a code change may not change the email or status".into(),
            ));
        }
        let mut users = self.users.lock().unwrap();
        let mut codes = self.codes.lock().unwrap();
        if users.get(&user.id).map(|u| u.version) != Some(previous.version) {
            return Err(StoreError::VersionConflict);
        }
        match change {
            CodeChange::Put(code) => {
                codes.insert(user.id, code.clone());
            }
            CodeChange::Consume(code_id) => {
                if codes.get(&user.id).is_none_or(|code| code.id != code_id) {
                    return Err(StoreError::NotFound);
                }
                codes.remove(&user.id);
            }
            CodeChange::Delete => {
                codes.remove(&user.id);
            }
        }
        users.insert(user.id, user.clone());
        self.record_all(events);
        Ok(())
    }

    async fn take_daily_sms(&self, day: &str, cap: u32) -> Result<bool, StoreError> {
        let mut days = self.sms_days.lock().unwrap();
        let sent = days.entry(day.to_owned()).or_default();
        if *sent >= cap {
            return Ok(false);
        }
        *sent += 1;
        Ok(true)
    }

    async fn return_daily_sms(&self, day: &str) -> Result<(), StoreError> {
        if let Some(sent) = self.sms_days.lock().unwrap().get_mut(day) {
            *sent = sent.saturating_sub(1);
        }
        Ok(())
    }

    async fn get_sms_log(&self, user: UserId) -> Result<Option<SmsLog>, StoreError> {
        Ok(self.sms_logs.lock().unwrap().get(&user).cloned())
    }

    async fn put_sms_log(
        &self,
        log: &SmsLog,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut logs = self.sms_logs.lock().unwrap();
        if logs.get(&log.user_id).map(|l| l.version) != expected_version {
            return Err(StoreError::VersionConflict);
        }
        logs.insert(log.user_id, log.clone());
        Ok(())
    }

    async fn get_factor_guard(&self, user: UserId) -> Result<Option<FactorGuard>, StoreError> {
        Ok(self.factor_guards.lock().unwrap().get(&user).cloned())
    }

    async fn put_factor_guard(
        &self,
        guard: &FactorGuard,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut guards = self.factor_guards.lock().unwrap();
        if guards.get(&guard.user_id).map(|g| g.version) != expected_version {
            return Err(StoreError::VersionConflict);
        }
        guards.insert(guard.user_id, guard.clone());
        Ok(())
    }
}

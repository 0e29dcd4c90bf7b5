//! `TokenStore` in memory.

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::StoreError;
use crate::domain::email_token::{EmailToken, MailLog, TokenKind, TokenStore, VerificationLogs};
use crate::domain::ids::UserId;
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::User;

#[async_trait]
impl TokenStore for MemoryStore {
    async fn put_token(&self, token: &EmailToken) -> Result<(), StoreError> {
        let mut tokens = self.tokens.lock().unwrap();
        let key = (token.kind, token.hash.clone());
        if tokens.contains_key(&key) {
            return Err(StoreError::VersionConflict);
        }
        tokens.insert(key, token.clone());
        Ok(())
    }

    async fn get_verification_logs(
        &self,
        user: UserId,
        email_key: &str,
    ) -> Result<VerificationLogs, StoreError> {
        let logs = self.verification_logs.lock().unwrap();
        let (by_user, user_version) = logs.by_user.get(&user).cloned().unwrap_or_default();
        let (by_address, address_version) =
            logs.by_address.get(email_key).cloned().unwrap_or_default();
        Ok(VerificationLogs {
            by_user,
            user_version,
            by_address,
            address_version,
        })
    }

    async fn put_verification_token(
        &self,
        token: &EmailToken,
        logs: &VerificationLogs,
    ) -> Result<(), StoreError> {
        let mut stored = self.verification_logs.lock().unwrap();
        let mut tokens = self.tokens.lock().unwrap();
        let user_version = stored.by_user.get(&token.user_id).map_or(0, |log| log.1);
        let address_version = stored
            .by_address
            .get(&token.email_key)
            .map_or(0, |log| log.1);
        let key = (token.kind, token.hash.clone());
        if user_version != logs.user_version
            || address_version != logs.address_version
            || tokens.contains_key(&key)
        {
            return Err(StoreError::VersionConflict);
        }
        stored
            .by_user
            .insert(token.user_id, (logs.by_user.clone(), user_version + 1));
        stored.by_address.insert(
            token.email_key.clone(),
            (logs.by_address.clone(), address_version + 1),
        );
        tokens.insert(key, token.clone());
        Ok(())
    }

    async fn get_token(
        &self,
        kind: TokenKind,
        hash: &str,
    ) -> Result<Option<EmailToken>, StoreError> {
        Ok(self
            .tokens
            .lock()
            .unwrap()
            .get(&(kind, hash.to_owned()))
            .cloned())
    }

    async fn redeem_token(
        &self,
        kind: TokenKind,
        hash: &str,
        now: time::OffsetDateTime,
        user: &User,
        previous: &User,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        if user.email_key() != previous.email_key() || user.status != previous.status {
            return Err(StoreError::Backend(
                "redeeming a token may not change the email or status".into(),
            ));
        }
        let mut tokens = self.tokens.lock().unwrap();
        let mut users = self.users.lock().unwrap();
        let key = (kind, hash.to_owned());
        if tokens.get(&key).is_none_or(|t| t.expires_at <= now) {
            return Err(StoreError::NotFound);
        }
        if users.get(&user.id).map(|u| u.version) != Some(previous.version) {
            return Err(StoreError::VersionConflict);
        }
        tokens.remove(&key);
        users.insert(user.id, user.clone());
        drop((tokens, users));
        self.record_all(events);
        Ok(())
    }

    async fn get_mail_log(&self, email_key: &str) -> Result<Option<MailLog>, StoreError> {
        Ok(self.mail_logs.lock().unwrap().get(email_key).cloned())
    }

    async fn put_mail_log(
        &self,
        log: &MailLog,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut logs = self.mail_logs.lock().unwrap();
        if logs.get(&log.email_key).map(|l| l.version) != expected_version {
            return Err(StoreError::VersionConflict);
        }
        logs.insert(log.email_key.clone(), log.clone());
        Ok(())
    }
}

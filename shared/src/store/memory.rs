//! The in-memory adapter, for fast unit tests. Same contract as the DynamoDB one.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Lockout, LockoutStore, SessionStore, StoreError, UserPartition, UserStore, user_sort_key,
};
use crate::ids::{SessionId, UserId};
use crate::session::Session;
use crate::user::{Status, User};

mod codes;
mod reports;

#[derive(Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<UserId, User>>,
    emails: Mutex<HashMap<String, UserId>>,
    sessions: Mutex<HashMap<SessionId, Session>>,
    lockouts: Mutex<HashMap<String, Lockout>>,
    tokens: Mutex<HashMap<(super::TokenKind, String), super::EmailToken>>,
    mail_logs: Mutex<HashMap<String, super::MailLog>>,
    codes: Mutex<HashMap<UserId, super::codes::OneTimeCode>>,
    sms_logs: Mutex<HashMap<UserId, super::codes::SmsLog>>,
    pub(super) reports: Mutex<reports::MemoryReports>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut emails = self.emails.lock().unwrap();
        let mut users = self.users.lock().unwrap();
        if emails.contains_key(&user.email_key()) || users.contains_key(&user.id) {
            return Err(StoreError::EmailTaken);
        }
        emails.insert(user.email_key(), user.id);
        users.insert(user.id, user.clone());
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.users.lock().unwrap().get(&id).cloned())
    }

    async fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError> {
        let id = self.emails.lock().unwrap().get(email_key).copied();
        Ok(id
            .and_then(|id| self.users.lock().unwrap().get(&id).cloned())
            .filter(|user| user.status != Status::Deleted))
    }

    async fn save_user(
        &self,
        user: &User,
        previous: &User,
        keep_session: Option<SessionId>,
    ) -> Result<(), StoreError> {
        let mut emails = self.emails.lock().unwrap();
        let mut users = self.users.lock().unwrap();
        let mut sessions = self.sessions.lock().unwrap();
        if users.get(&user.id).map(|u| u.version) != Some(previous.version) {
            return Err(StoreError::VersionConflict);
        }
        if let Some(id) = keep_session
            && !sessions.contains_key(&id)
        {
            return Err(StoreError::VersionConflict);
        }
        let email_moved = user.email_key() != previous.email_key();
        let live = user.status != Status::Deleted;
        if email_moved && live && emails.contains_key(&user.email_key()) {
            return Err(StoreError::EmailTaken);
        }
        if (email_moved || !live) && previous.status != Status::Deleted {
            emails.remove(&previous.email_key());
        }
        if email_moved && live {
            emails.insert(user.email_key(), user.id);
        }
        if let Some(session) = keep_session.and_then(|id| sessions.get_mut(&id)) {
            session.epoch = user.session_epoch;
            session.version += 1;
        }
        users.insert(user.id, user.clone());
        Ok(())
    }

    async fn count_users(&self, partition: UserPartition) -> Result<u64, StoreError> {
        let users = self.users.lock().unwrap();
        Ok(users.values().filter(|u| partition.contains(u)).count() as u64)
    }

    async fn list_users(
        &self,
        partition: UserPartition,
        after: Option<&str>,
        limit: Option<usize>,
        ascending: bool,
    ) -> Result<Vec<User>, StoreError> {
        let users = self.users.lock().unwrap();
        let mut matching: Vec<(String, User)> = users
            .values()
            .filter(|u| partition.contains(u))
            .map(|u| (user_sort_key(u), u.clone()))
            .filter(|(key, _)| match after {
                Some(after) if ascending => key.as_str() > after,
                Some(after) => key.as_str() < after,
                None => true,
            })
            .collect();
        matching.sort_by(|a, b| a.0.cmp(&b.0));
        if !ascending {
            matching.reverse();
        }
        Ok(matching
            .into_iter()
            .map(|(_, user)| user)
            .take(limit.unwrap_or(usize::MAX))
            .collect())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut sessions = self.sessions.lock().unwrap();
        if sessions.contains_key(&session.id) {
            return Err(StoreError::VersionConflict);
        }
        sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        Ok(self.sessions.lock().unwrap().get(&id).cloned())
    }

    async fn save_session(
        &self,
        session: &Session,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let mut sessions = self.sessions.lock().unwrap();
        match sessions.get(&session.id) {
            None => Err(StoreError::NotFound),
            Some(stored) if stored.version != expected_version => Err(StoreError::VersionConflict),
            Some(_) => {
                sessions.insert(session.id, session.clone());
                Ok(())
            }
        }
    }

    async fn delete_session(&self, id: SessionId) -> Result<bool, StoreError> {
        Ok(self.sessions.lock().unwrap().remove(&id).is_some())
    }

    async fn get_user_and_session(
        &self,
        user: UserId,
        session: SessionId,
    ) -> Result<(Option<User>, Option<Session>), StoreError> {
        Ok((
            self.users.lock().unwrap().get(&user).cloned(),
            self.sessions.lock().unwrap().get(&session).cloned(),
        ))
    }
}

#[async_trait]
impl LockoutStore for MemoryStore {
    async fn get_lockout(&self, email_key: &str) -> Result<Option<Lockout>, StoreError> {
        Ok(self.lockouts.lock().unwrap().get(email_key).cloned())
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
}

#[async_trait]
impl super::TokenStore for MemoryStore {
    async fn put_token(&self, token: &super::EmailToken) -> Result<(), StoreError> {
        let mut tokens = self.tokens.lock().unwrap();
        let key = (token.kind, token.hash.clone());
        if tokens.contains_key(&key) {
            return Err(StoreError::VersionConflict);
        }
        tokens.insert(key, token.clone());
        Ok(())
    }

    async fn get_token(
        &self,
        kind: super::TokenKind,
        hash: &str,
    ) -> Result<Option<super::EmailToken>, StoreError> {
        Ok(self
            .tokens
            .lock()
            .unwrap()
            .get(&(kind, hash.to_owned()))
            .cloned())
    }

    async fn redeem_token(
        &self,
        kind: super::TokenKind,
        hash: &str,
        now: time::OffsetDateTime,
        user: &User,
        previous: &User,
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
        Ok(())
    }

    async fn get_mail_log(&self, email_key: &str) -> Result<Option<super::MailLog>, StoreError> {
        Ok(self.mail_logs.lock().unwrap().get(email_key).cloned())
    }

    async fn put_mail_log(
        &self,
        log: &super::MailLog,
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

//! `SessionStore` in memory.

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::StoreError;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::lockout::LockoutStore;
use crate::domain::security_event::SecurityEvent;
use crate::domain::session::{Session, SessionStore};
use crate::domain::user::User;

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

    async fn list_user_sessions(&self, user: UserId) -> Result<Vec<Session>, StoreError> {
        let mut found: Vec<Session> = self
            .sessions
            .lock()
            .unwrap()
            .values()
            .filter(|session| session.user_id == user)
            .cloned()
            .collect();
        found.sort_by_key(|s| std::cmp::Reverse((s.last_used_at, s.id)));
        Ok(found)
    }

    async fn delete_session(&self, id: SessionId) -> Result<bool, StoreError> {
        Ok(self.sessions.lock().unwrap().remove(&id).is_some())
    }

    async fn create_session_recording(
        &self,
        session: &Session,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        self.create_session(session).await?;
        self.record_all(events);
        Ok(())
    }

    async fn create_login_session(
        &self,
        session: &Session,
        events: &[SecurityEvent],
        email_key: &str,
        withdrawn: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        self.create_session_recording(session, events).await?;
        self.clear_lockout_withdrawing(email_key, withdrawn).await
    }

    async fn save_session_recording(
        &self,
        session: &Session,
        expected_version: u64,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        self.save_session(session, expected_version).await?;
        self.record_all(events);
        Ok(())
    }

    async fn delete_session_recording(
        &self,
        id: SessionId,
        events: &[SecurityEvent],
    ) -> Result<bool, StoreError> {
        let deleted = self.delete_session(id).await?;
        if deleted {
            self.record_all(events);
        }
        Ok(deleted)
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

//! `UserStore` in memory.

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::StoreError;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::{Status, User, UserPartition, UserStore, user_sort_key};

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user_recording(
        &self,
        user: &User,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        let mut emails = self.emails.lock().unwrap();
        let mut users = self.users.lock().unwrap();
        if emails.contains_key(&user.email_key()) || users.contains_key(&user.id) {
            return Err(StoreError::EmailTaken);
        }
        emails.insert(user.email_key(), user.id);
        users.insert(user.id, user.clone());
        self.record_all(events);
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

    async fn save_user_recording(
        &self,
        user: &User,
        previous: &User,
        keep_session: Option<SessionId>,
        events: &[SecurityEvent],
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
        self.record_all(events);
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

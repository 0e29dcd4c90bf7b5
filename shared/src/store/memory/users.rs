//! `UserStore` in memory.

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::StoreError;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::{IndexQuery, Status, User, UserIndex, UserPartition, UserStore};

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
        let id = self.claimed_by(email_key);
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

    async fn count_by_name(
        &self,
        partition: UserPartition,
        column: UserIndex,
        name: &str,
    ) -> Result<u64, StoreError> {
        let users = self.users.lock().unwrap();
        let named = |u: &User| match column {
            UserIndex::FirstName => u.first_name.as_deref() == Some(name),
            UserIndex::LastName => u.last_name.as_deref() == Some(name),
            UserIndex::CreatedAt | UserIndex::Email => false,
        };
        Ok(users
            .values()
            .filter(|u| partition.contains(u) && named(u))
            .count() as u64)
    }

    async fn query_index(&self, query: &IndexQuery, limit: usize) -> Result<Vec<User>, StoreError> {
        Ok(self
            .rows(query)
            .into_iter()
            .take(limit)
            .map(|(_, user)| user)
            .collect())
    }

    async fn index_keys(
        &self,
        query: &IndexQuery,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .rows(query)
            .into_iter()
            .take(limit)
            .map(|(key, _)| key)
            .collect())
    }

    async fn count_index(&self, query: &IndexQuery) -> Result<u64, StoreError> {
        Ok(self.rows(query).len() as u64)
    }
}

impl MemoryStore {
    /// Every row of `query` with its sort key, in the query's order.
    fn rows(&self, query: &IndexQuery) -> Vec<(String, User)> {
        let users = self.users.lock().unwrap();
        let mut rows: Vec<(String, User)> = users
            .values()
            .filter(|u| query.matches(u))
            .map(|u| (query.index.sort_key(u), u.clone()))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        if !query.ascending {
            rows.reverse();
        }
        rows
    }
}

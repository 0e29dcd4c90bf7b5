//! `SecurityEventStore` in memory, with the same contract as the DynamoDB adapter.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::domain::clock;
use crate::domain::ids::UserId;
use crate::domain::security_event::{RETENTION, SecurityEvent, SecurityEventStore};
use crate::domain::{ListStart, StoreError};

/// Events of each user by sort key, for [`MemoryStore`].
pub type MemoryEvents = HashMap<UserId, BTreeMap<String, SecurityEvent>>;

impl MemoryStore {
    /// Records `events` as part of a change that has just been applied.
    pub(super) fn record_all(&self, events: &[SecurityEvent]) {
        let mut stored = self.events.lock().unwrap();
        for event in events {
            stored
                .entry(event.user_id)
                .or_default()
                .insert(event.sort_key(), event.clone());
        }
    }

    /// Deletes `events`, recorded for a change that did not happen after all.
    pub(super) fn forget_all(&self, events: &[SecurityEvent]) {
        let mut stored = self.events.lock().unwrap();
        for event in events {
            if let Some(by_key) = stored.get_mut(&event.user_id) {
                by_key.remove(&event.sort_key());
            }
        }
    }

    /// The user's unexpired events, newest first, with their sort keys.
    fn live_events(&self, user: UserId, now: OffsetDateTime) -> Vec<(String, SecurityEvent)> {
        let cutoff = clock::format(now - RETENTION);
        let events = self.events.lock().unwrap();
        events.get(&user).map_or_else(Vec::new, |by_key| {
            by_key
                .iter()
                .rev()
                .filter(|(sort_key, _)| sort_key.as_str() >= cutoff.as_str())
                .map(|(sort_key, event)| (sort_key.clone(), event.clone()))
                .collect()
        })
    }
}

#[async_trait]
impl SecurityEventStore for MemoryStore {
    async fn record(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        let mut events = self.events.lock().unwrap();
        let by_key = events.entry(event.user_id).or_default();
        if by_key.contains_key(&event.sort_key()) {
            return Err(StoreError::VersionConflict);
        }
        by_key.insert(event.sort_key(), event.clone());
        Ok(())
    }

    async fn count_events(&self, user: UserId, now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(self.live_events(user, now).len() as u64)
    }

    async fn list_events(
        &self,
        user: UserId,
        start: ListStart,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        let skip = match start {
            ListStart::Skip(count) => usize::try_from(count).unwrap_or(usize::MAX),
            ListStart::After(_) => 0,
        };
        Ok(self
            .live_events(user, now)
            .into_iter()
            .filter(|(sort_key, _)| match &start {
                ListStart::After(after) => sort_key < after,
                ListStart::Skip(_) => true,
            })
            .skip(skip)
            .take(limit)
            .map(|(_, event)| event)
            .collect())
    }
}

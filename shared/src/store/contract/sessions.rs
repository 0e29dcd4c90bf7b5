//! The contract of `SessionStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use crate::domain::ids::UserId;
use crate::domain::security_event::{EventType, SecurityEvent, SecurityEventStore};
use crate::domain::session::{Session, SessionStore, Stage};
use crate::domain::user::UserStore;
use crate::domain::{ListStart, StoreError};

use super::users::user;

/// Runs every check on a store that starts empty.
pub async fn run_all<S: SessionStore + UserStore + SecurityEventStore>(store: &S) {
    sessions_round_trip_and_are_versioned(store).await;
    a_users_sessions_are_listed_most_recently_used_first(store).await;
    session_writes_record_their_events_only_when_they_happen(store).await;
}

async fn session_writes_record_their_events_only_when_they_happen<
    S: SessionStore + SecurityEventStore,
>(
    store: &S,
) {
    let now = crate::domain::clock::Clock::system().now();
    let owner = UserId::new();
    let event =
        |kind, micros| SecurityEvent::new(owner, kind, now + time::Duration::microseconds(micros));
    let kinds = || async {
        let events = store
            .list_events(owner, ListStart::Skip(0), 10, now)
            .await
            .unwrap();
        events.into_iter().map(|e| e.kind).rev().collect::<Vec<_>>()
    };
    let session = Session::new(owner, 0, Stage::TwoFactor, now);
    let opened = event(EventType::LoginSucceeded, 0);
    store
        .create_session_recording(&session, &[opened])
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_session_recording(&session, &[event(EventType::LoginFailed, 1)])
            .await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(kinds().await, [EventType::LoginSucceeded]);

    let mut upgraded = session.clone();
    upgraded.stage = Stage::Full;
    upgraded.version += 1;
    store
        .save_session_recording(
            &upgraded,
            session.version,
            &[event(EventType::TotpEnabled, 2)],
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .save_session_recording(
                &upgraded,
                session.version,
                &[event(EventType::LoginFailed, 3)]
            )
            .await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.get_session(session.id).await.unwrap(), Some(upgraded));
    let unknown = Session::new(owner, 0, Stage::Full, now);
    assert!(matches!(
        store
            .save_session_recording(&unknown, 0, &[event(EventType::LoginFailed, 4)])
            .await,
        Err(StoreError::NotFound)
    ));

    let ended = event(EventType::SessionEnded, 5);
    assert!(
        store
            .delete_session_recording(session.id, &[ended])
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_session_recording(session.id, &[event(EventType::LoginFailed, 6)])
            .await
            .unwrap()
    );
    assert_eq!(store.get_session(session.id).await.unwrap(), None);
    assert_eq!(
        kinds().await,
        [
            EventType::LoginSucceeded,
            EventType::TotpEnabled,
            EventType::SessionEnded
        ]
    );
}

async fn a_users_sessions_are_listed_most_recently_used_first<S: SessionStore + UserStore>(
    store: &S,
) {
    let now = crate::domain::clock::Clock::system().now();
    let (owner, other) = (
        user("listed@example.com", now),
        user("unlisted@example.com", now),
    );
    let mut ids = Vec::new();
    for (offset, stage) in [(0, Stage::Full), (2, Stage::TwoFactor), (1, Stage::Full)] {
        let at = now + time::Duration::seconds(offset);
        let mut session = Session::new(owner.id, 0, stage, at);
        session.user_agent = Some("Kuri/1.0".into());
        store.create_session(&session).await.unwrap();
        ids.push(session.id);
    }
    store
        .create_session(&Session::new(other.id, 0, Stage::Full, now))
        .await
        .unwrap();
    let listed = store.list_user_sessions(owner.id).await.unwrap();
    let order: Vec<_> = listed.iter().map(|s| s.id).collect();
    assert_eq!(order, [ids[1], ids[2], ids[0]]);
    assert_eq!(listed[0].stage, Stage::TwoFactor);
    assert_eq!(listed[0].user_agent.as_deref(), Some("Kuri/1.0"));
    assert!(
        store
            .list_user_sessions(UserId::new())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn sessions_round_trip_and_are_versioned<S: SessionStore + UserStore>(store: &S) {
    let now = crate::domain::clock::Clock::system().now();
    let owner = user("sessions@example.com", now);
    store.create_user(&owner).await.unwrap();
    let mut session = Session::new(owner.id, 0, Stage::Full, now);
    let _token = session.rotate(now);
    store.create_session(&session).await.unwrap();
    assert_eq!(
        store.get_session(session.id).await.unwrap().as_ref(),
        Some(&session)
    );

    let (found_user, found_session) = store
        .get_user_and_session(owner.id, session.id)
        .await
        .unwrap();
    assert_eq!(found_user.map(|u| u.id), Some(owner.id));
    assert_eq!(found_session.as_ref(), Some(&session));

    let mut rotated = session.clone();
    rotated.version += 1;
    let _ = rotated.rotate(now);
    store.save_session(&rotated, session.version).await.unwrap();
    assert!(matches!(
        store.save_session(&rotated, session.version).await,
        Err(StoreError::VersionConflict)
    ));
    assert!(store.delete_session(session.id).await.unwrap());
    assert!(!store.delete_session(session.id).await.unwrap());
    assert!(matches!(
        store.save_session(&rotated, rotated.version).await,
        Err(StoreError::NotFound)
    ));
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        super::run_all(&crate::store::memory::MemoryStore::new()).await;
    }
}

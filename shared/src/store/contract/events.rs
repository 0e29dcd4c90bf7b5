//! The contract of `SecurityEventStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use time::Duration;

use crate::domain::ListStart;
use crate::domain::clock::Clock;
use crate::domain::ids::{EventId, SessionId, UserId};
use crate::domain::security_event::{
    Actor, EventType, Origin, RETENTION, SecurityEvent, SecurityEventStore,
};

/// Runs every check on a store that starts empty.
pub async fn run_all<S: SecurityEventStore + ?Sized>(store: &S) {
    let now = Clock::system().now();
    let owner = UserId::new();
    let admin = UserId::new();
    let neighbour = UserId::new();
    // Oldest first, a minute apart; the first one is past the retention and never read.
    let all: Vec<SecurityEvent> = (0..6)
        .map(|i| SecurityEvent {
            id: EventId::new(),
            user_id: owner,
            kind: EventType::ALL[i],
            created_at: if i == 0 {
                now - RETENTION - Duration::minutes(1)
            } else {
                now - Duration::minutes(10 - i as i64)
            },
            session_id: (i % 2 == 0).then(SessionId::new),
            origin: if i == 3 {
                Origin::default()
            } else {
                Origin::new(Some("198.51.100.7"), Some("KuriApp/2.0 (iOS)"))
            },
            actor: match i {
                3 => None,
                4 => Some(Actor {
                    id: admin,
                    admin: true,
                }),
                _ => Some(Actor {
                    id: owner,
                    admin: false,
                }),
            },
        })
        .collect();
    // Stored out of order: listing sorts by time, not by insertion.
    for event in all.iter().rev() {
        store.record(event).await.unwrap();
    }
    store
        .record(&SecurityEvent::new(
            neighbour,
            EventType::UserRegistered,
            now,
        ))
        .await
        .unwrap();
    assert!(
        store.record(&all[2]).await.is_err(),
        "an event is recorded once"
    );

    assert_eq!(
        store.count_events(owner, now).await.unwrap(),
        5,
        "expired events are not counted"
    );
    assert_eq!(store.count_events(neighbour, now).await.unwrap(), 1);
    assert_eq!(store.count_events(UserId::new(), now).await.unwrap(), 0);

    let newest_first: Vec<SecurityEvent> = all[1..].iter().rev().cloned().collect();
    let listed = store
        .list_events(owner, ListStart::Skip(0), 10, now)
        .await
        .unwrap();
    assert_eq!(
        listed, newest_first,
        "events round-trip, newest first, none expired"
    );

    let skipped = store
        .list_events(owner, ListStart::Skip(2), 10, now)
        .await
        .unwrap();
    assert_eq!(skipped, newest_first[2..]);
    let past_the_end = store
        .list_events(owner, ListStart::Skip(5), 10, now)
        .await
        .unwrap();
    assert!(past_the_end.is_empty());

    let first_two = store
        .list_events(owner, ListStart::Skip(0), 2, now)
        .await
        .unwrap();
    assert_eq!(first_two, newest_first[..2]);
    let after = store
        .list_events(owner, ListStart::After(first_two[1].sort_key()), 2, now)
        .await
        .unwrap();
    assert_eq!(
        after,
        newest_first[2..4],
        "a cursor resumes after its event"
    );
    let last = store
        .list_events(owner, ListStart::After(after[1].sort_key()), 2, now)
        .await
        .unwrap();
    assert_eq!(last, newest_first[4..]);

    // A year later everything of now has expired.
    let later = now + RETENTION + Duration::hours(1);
    assert_eq!(store.count_events(owner, later).await.unwrap(), 0);
    assert!(
        store
            .list_events(owner, ListStart::Skip(0), 10, later)
            .await
            .unwrap()
            .is_empty()
    );
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_store_meets_the_contract() {
        super::run_all(&crate::store::memory::MemoryStore::new()).await;
    }
}

//! The contract of `LockoutStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use crate::domain::ids::UserId;
use crate::domain::lockout::{Lockout, LockoutStore};
use crate::domain::security_event::{EventType, SecurityEvent, SecurityEventStore};
use crate::domain::session::{Session, SessionStore, Stage};
use crate::domain::user::UserStore;
use crate::domain::{ListStart, StoreError};

/// Runs every check on a store that starts empty.
pub async fn run_all<S: LockoutStore + SecurityEventStore + SessionStore + UserStore>(store: &S) {
    lockouts_are_versioned(store).await;
    a_lockout_write_records_its_events_and_a_clear_withdraws_them(store).await;
    a_login_reads_claim_and_lockout_together_and_its_session_clears_the_attempt(store).await;
}

/// A login's first read (the claim and the lockout) and its last write (the session, with the
/// lockout cleared and the reserved events withdrawn).
async fn a_login_reads_claim_and_lockout_together_and_its_session_clears_the_attempt<
    S: LockoutStore + SecurityEventStore + SessionStore + UserStore,
>(
    store: &S,
) {
    let now = crate::domain::clock::Clock::system().now();
    let account = super::users::user("Login.Pair@Example.com", now);
    store.create_user(&account).await.unwrap();
    let email_key = "login.pair@example.com";
    assert_eq!(
        store
            .find_claim_and_lockout(email_key, email_key)
            .await
            .unwrap(),
        (Some(account.id), None),
        "a claim without a lockout"
    );
    assert_eq!(
        store
            .find_claim_and_lockout("nobody.pair@example.com", "nobody.pair@example.com")
            .await
            .unwrap(),
        (None, None)
    );
    let lockout = Lockout {
        email_key: email_key.into(),
        failures: 1,
        window_start: now,
        last_failure_at: now,
        locked_until: None,
        lock_secs: 0,
        version: 1,
    };
    let reserved = [SecurityEvent::new(account.id, EventType::LoginFailed, now)];
    store
        .put_lockout_recording(&lockout, None, &reserved, &[])
        .await
        .unwrap();
    assert_eq!(
        store
            .find_claim_and_lockout(email_key, email_key)
            .await
            .unwrap(),
        (Some(account.id), Some(lockout.clone()))
    );
    let session = Session::new(account.id, 0, Stage::Full, now);
    let succeeded = SecurityEvent::new(
        account.id,
        EventType::LoginSucceeded,
        now + time::Duration::microseconds(1),
    );
    store
        .create_login_session(
            &session,
            std::slice::from_ref(&succeeded),
            email_key,
            &reserved,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .find_claim_and_lockout(email_key, email_key)
            .await
            .unwrap(),
        (Some(account.id), None),
        "the login cleared the lockout"
    );
    assert!(store.get_session(session.id).await.unwrap().is_some());
    let events = store
        .list_events(account.id, ListStart::Skip(0), 10, now)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventType::LoginSucceeded],
        "the reserved failure is withdrawn, the success recorded"
    );
    // A session that exists already refuses the write, and the lockout stays.
    store
        .put_lockout_recording(&lockout, None, &[], &[])
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_login_session(&session, &[], email_key, &[])
            .await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(
        store.get_lockout(email_key).await.unwrap(),
        Some(lockout),
        "nothing is half-written"
    );
}

async fn a_lockout_write_records_its_events_and_a_clear_withdraws_them<
    S: LockoutStore + SecurityEventStore,
>(
    store: &S,
) {
    let now = crate::domain::clock::Clock::system().now();
    let owner = UserId::new();
    let listed = || async {
        store
            .list_events(owner, ListStart::Skip(0), 10, now)
            .await
            .unwrap()
            .len()
    };
    let lockout = Lockout {
        email_key: "recorded@example.com".into(),
        failures: 5,
        window_start: now,
        last_failure_at: now,
        locked_until: Some(now + time::Duration::seconds(30)),
        lock_secs: 30,
        version: 1,
    };
    let failed = SecurityEvent::new(owner, EventType::LoginFailed, now);
    let locked = SecurityEvent::new(
        owner,
        EventType::LoginLocked,
        now + time::Duration::microseconds(1),
    );
    let recorded = [failed, locked];
    store
        .put_lockout_recording(&lockout, None, &recorded, &[])
        .await
        .unwrap();
    assert_eq!(listed().await, 2);
    let stale = SecurityEvent::new(owner, EventType::LoginFailed, now);
    assert!(matches!(
        store
            .put_lockout_recording(&lockout, None, &[stale], &[])
            .await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(listed().await, 2, "a refused write records nothing");
    store
        .clear_lockout_withdrawing("recorded@example.com", &recorded)
        .await
        .unwrap();
    assert_eq!(listed().await, 0);
    assert_eq!(
        store.get_lockout("recorded@example.com").await.unwrap(),
        None
    );
    // An unknown email's attempt: the same write, with decoys of the events in place of them;
    // no user's events show them.
    let decoys = [
        SecurityEvent::new(UserId::new(), EventType::LoginFailed, now),
        SecurityEvent::new(UserId::new(), EventType::LoginLocked, now),
    ];
    store
        .put_lockout_recording(&lockout, None, &[], &decoys)
        .await
        .unwrap();
    assert_eq!(listed().await, 0, "decoys are no one's events");
    assert_eq!(
        store.get_lockout("recorded@example.com").await.unwrap(),
        Some(lockout)
    );
    store
        .clear_lockout_withdrawing("recorded@example.com", &[])
        .await
        .unwrap();
}

async fn lockouts_are_versioned<S: LockoutStore>(store: &S) {
    let now = crate::domain::clock::Clock::system().now();
    let lockout = Lockout {
        email_key: "locked@example.com".into(),
        failures: 1,
        window_start: now,
        last_failure_at: now,
        locked_until: None,
        lock_secs: 0,
        version: 1,
    };
    store.put_lockout(&lockout, None).await.unwrap();
    assert!(matches!(
        store.put_lockout(&lockout, None).await,
        Err(StoreError::VersionConflict)
    ));
    let next = Lockout {
        failures: 2,
        version: 2,
        ..lockout.clone()
    };
    store.put_lockout(&next, Some(1)).await.unwrap();
    assert_eq!(
        store.get_lockout("locked@example.com").await.unwrap(),
        Some(next)
    );
    store.clear_lockout("locked@example.com").await.unwrap();
    assert_eq!(store.get_lockout("locked@example.com").await.unwrap(), None);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        super::run_all(&crate::store::memory::MemoryStore::new()).await;
    }
}

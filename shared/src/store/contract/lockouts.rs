//! The contract of `LockoutStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use crate::domain::StoreError;
use crate::domain::lockout::{Lockout, LockoutStore};

/// Runs every check on a store that starts empty.
pub async fn run_all<S: LockoutStore>(store: &S) {
    lockouts_are_versioned(store).await;
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

//! The contract of `PasskeyStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use time::Duration;

use crate::domain::StoreError;
use crate::domain::clock::Clock;
use crate::domain::ids::{CeremonyId, PasskeyId, UserId};
use crate::domain::passkey::{Ceremony, CeremonyKind, MAX_PASSKEYS, Passkey, PasskeyStore};

fn passkey(user: UserId, credential_id: &[u8], minutes_ago: i64) -> Passkey {
    Passkey {
        id: PasskeyId::new(),
        user_id: user,
        name: "Phone".into(),
        credential_id: credential_id.to_vec(),
        credential: "{\"cred\":{}}".into(),
        counter: 0,
        backed_up: true,
        created_at: Clock::system().now() - Duration::minutes(minutes_ago),
        last_used_at: None,
    }
}

/// Runs every check on a store that starts empty.
pub async fn run_all<S: PasskeyStore + ?Sized>(store: &S) {
    ceremonies_are_taken_once(store).await;
    credentials_are_claimed_once_and_capped(store).await;
    uses_are_saved_only_on_the_counter_read(store).await;
    removal_frees_the_credential(store).await;
}

async fn ceremonies_are_taken_once<S: PasskeyStore + ?Sized>(store: &S) {
    let user = UserId::new();
    let ceremony = Ceremony::new(
        CeremonyKind::Registration,
        Some(user),
        "{\"rs\":{}}".into(),
        Clock::system().now(),
    );
    store.put_ceremony(&ceremony).await.unwrap();
    assert_eq!(
        store.take_ceremony(ceremony.id).await.unwrap(),
        Some(ceremony.clone())
    );
    assert_eq!(store.take_ceremony(ceremony.id).await.unwrap(), None);
    assert_eq!(store.take_ceremony(CeremonyId::new()).await.unwrap(), None);
}

async fn credentials_are_claimed_once_and_capped<S: PasskeyStore + ?Sized>(store: &S) {
    let owner = UserId::new();
    let other = UserId::new();
    let first = passkey(owner, b"credential-one", 5);
    store.add_passkey(&first).await.unwrap();
    let stolen = passkey(other, b"credential-one", 0);
    assert!(matches!(
        store.add_passkey(&stolen).await,
        Err(StoreError::CredentialTaken)
    ));
    assert!(store.list_passkeys(other).await.unwrap().is_empty());
    assert_eq!(
        store
            .find_passkey_by_credential(b"credential-one")
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.find_passkey_by_credential(b"nobody").await.unwrap(),
        None
    );

    for i in 1..MAX_PASSKEYS {
        let id = format!("credential-{i}-of-owner");
        store
            .add_passkey(&passkey(owner, id.as_bytes(), 0))
            .await
            .unwrap();
    }
    let one_too_many = passkey(owner, b"credential-eleven", 0);
    assert!(matches!(
        store.add_passkey(&one_too_many).await,
        Err(StoreError::TooManyPasskeys)
    ));
    assert_eq!(
        store.list_passkeys(owner).await.unwrap().len(),
        MAX_PASSKEYS
    );
    assert_eq!(
        store
            .find_passkey_by_credential(b"credential-eleven")
            .await
            .unwrap(),
        None
    );
    store.delete_all_passkeys(owner).await.unwrap();
    assert!(store.list_passkeys(owner).await.unwrap().is_empty());
    // The count went with them: ten fit again.
    store.add_passkey(&one_too_many).await.unwrap();
}

async fn uses_are_saved_only_on_the_counter_read<S: PasskeyStore + ?Sized>(store: &S) {
    let user = UserId::new();
    let mut stored = passkey(user, b"counting-credential", 0);
    stored.counter = 7;
    store.add_passkey(&stored).await.unwrap();
    let mut used = stored.clone();
    used.counter = 8;
    used.last_used_at = Some(Clock::system().now());
    store.save_passkey_use(&used, 7).await.unwrap();
    let mut stale = stored.clone();
    stale.counter = 9;
    assert!(matches!(
        store.save_passkey_use(&stale, 7).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.list_passkeys(user).await.unwrap(), vec![used.clone()]);
    store.delete_passkey(user, used.id).await.unwrap();
    assert!(matches!(
        store.save_passkey_use(&used, 8).await,
        Err(StoreError::NotFound)
    ));
}

async fn removal_frees_the_credential<S: PasskeyStore + ?Sized>(store: &S) {
    let owner = UserId::new();
    let stranger = UserId::new();
    let key = passkey(owner, b"removable", 0);
    store.add_passkey(&key).await.unwrap();
    assert!(matches!(
        store.delete_passkey(stranger, key.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_passkey(owner, key.id).await.unwrap();
    assert!(matches!(
        store.delete_passkey(owner, key.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .find_passkey_by_credential(b"removable")
            .await
            .unwrap(),
        None
    );
    store
        .add_passkey(&passkey(stranger, b"removable", 0))
        .await
        .unwrap();
}

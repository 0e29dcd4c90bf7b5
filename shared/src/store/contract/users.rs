//! The contract of `UserStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use time::{Duration, OffsetDateTime};

use crate::domain::StoreError;
use crate::domain::ids::UserId;
use crate::domain::session::{Session, SessionStore, Stage};
use crate::domain::user::{Status, User};
use crate::domain::user::{UserPartition, UserStore, user_sort_key};

pub(super) fn user(email: &str, created_at: OffsetDateTime) -> User {
    let created_at = crate::domain::clock::Clock::truncate(created_at);
    User {
        id: UserId::new(),
        email: email.to_owned(),
        email_verified: false,
        first_name: Some("Ada".into()),
        last_name: None,
        full_name: None,
        status: Status::Active,
        roles: Vec::new(),
        marketing_opt_in: false,
        tos_agreed_at: Some(created_at),
        password_hash: "$argon2id$fake".into(),
        version: 1,
        session_epoch: 0,
        mobile: None,
        pending_mobile: None,
        factors: Default::default(),
        created_at,
        updated_at: created_at,
    }
}

fn next_version(previous: &User) -> User {
    let mut user = previous.clone();
    user.version += 1;
    user
}

/// Runs every check on a store that starts empty.
pub async fn run_all<S: UserStore + SessionStore>(store: &S) {
    users_are_unique_by_email_and_round_trip(store).await;
    saves_are_versioned_and_move_email_claims(store).await;
    deleting_releases_the_email(store).await;
    listing_follows_the_indexes(store).await;
}

async fn users_are_unique_by_email_and_round_trip<S: UserStore>(store: &S) {
    let now = crate::domain::clock::Clock::system().now();
    let ada = user("Unique@Example.com", now);
    store.create_user(&ada).await.unwrap();
    let twin = user("unique@example.COM", now);
    assert!(matches!(
        store.create_user(&twin).await,
        Err(StoreError::EmailTaken)
    ));
    assert_eq!(store.get_user(ada.id).await.unwrap().as_ref(), Some(&ada));
    assert_eq!(
        store
            .find_user_by_email("unique@example.com")
            .await
            .unwrap(),
        Some(ada.clone())
    );
    assert_eq!(store.get_user(UserId::new()).await.unwrap(), None);
}

async fn saves_are_versioned_and_move_email_claims<S: UserStore + SessionStore>(store: &S) {
    let now = crate::domain::clock::Clock::system().now();
    let first = user("first@example.com", now);
    let other = user("other@example.com", now);
    store.create_user(&first).await.unwrap();
    store.create_user(&other).await.unwrap();

    let mut renamed = next_version(&first);
    renamed.email = "renamed@example.com".into();
    store.save_user(&renamed, &first, None).await.unwrap();
    assert_eq!(
        store.find_user_by_email("first@example.com").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .find_user_by_email("renamed@example.com")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(first.id)
    );
    // A stale write loses.
    assert!(matches!(
        store.save_user(&next_version(&first), &first, None).await,
        Err(StoreError::VersionConflict)
    ));
    // Taking someone else's email loses and changes nothing.
    let mut thief = next_version(&renamed);
    thief.email = "OTHER@example.com".into();
    assert!(matches!(
        store.save_user(&thief, &renamed, None).await,
        Err(StoreError::EmailTaken)
    ));
    assert_eq!(
        store.get_user(first.id).await.unwrap(),
        Some(renamed.clone())
    );

    // Keeping a session moves it to the new epoch in the same write.
    let session = Session::new(first.id, 0, Stage::Full, now);
    store.create_session(&session).await.unwrap();
    let mut revoked = next_version(&renamed);
    revoked.session_epoch += 1;
    store
        .save_user(&revoked, &renamed, Some(session.id))
        .await
        .unwrap();
    let kept = store.get_session(session.id).await.unwrap().unwrap();
    assert_eq!(kept.epoch, 1);
}

async fn deleting_releases_the_email<S: UserStore>(store: &S) {
    let now = crate::domain::clock::Clock::system().now();
    let gone = user("gone@example.com", now);
    store.create_user(&gone).await.unwrap();
    let mut deleted = next_version(&gone);
    deleted.status = Status::Deleted;
    store.save_user(&deleted, &gone, None).await.unwrap();
    assert_eq!(
        store.find_user_by_email("gone@example.com").await.unwrap(),
        None
    );
    store
        .create_user(&user("gone@example.com", now))
        .await
        .unwrap();
}

async fn listing_follows_the_indexes<S: UserStore>(store: &S) {
    // Earlier checks left four live users (and a deleted one).
    let base = crate::domain::clock::Clock::system().now() + Duration::days(1);
    let mut inactive = user("inactive@example.com", base);
    inactive.status = Status::Inactive;
    store.create_user(&inactive).await.unwrap();
    let late = user("late@example.com", base + Duration::seconds(1));
    store.create_user(&late).await.unwrap();

    assert_eq!(store.count_users(UserPartition::Live).await.unwrap(), 6);
    assert_eq!(
        store
            .count_users(UserPartition::Status(Status::Inactive))
            .await
            .unwrap(),
        1
    );
    let newest_first = store
        .list_users(UserPartition::Live, None, Some(2), false)
        .await
        .unwrap();
    assert_eq!(
        newest_first.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![late.id, inactive.id]
    );
    let after = user_sort_key(&newest_first[1]);
    let rest = store
        .list_users(UserPartition::Live, Some(&after), None, false)
        .await
        .unwrap();
    assert_eq!(rest.len(), 4);
    let all = store
        .list_users(UserPartition::Live, None, None, true)
        .await
        .unwrap();
    let keys: Vec<String> = all.iter().map(user_sort_key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        super::run_all(&crate::store::memory::MemoryStore::new()).await;
    }
}

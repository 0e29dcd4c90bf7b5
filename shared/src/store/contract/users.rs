//! The contract of `UserStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use time::{Duration, OffsetDateTime};

use crate::domain::StoreError;
use crate::domain::ids::UserId;
use crate::domain::session::{Session, SessionStore, Stage};
use crate::domain::user::{
    INDEX_SHARDS, IndexQuery, RowFilter, UserIndex, UserPartition, UserStore, index_shard,
};
use crate::domain::user::{Status, User};

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
    inactive.last_name = Some("Lovelace".into());
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
    let rows = |index, status, ascending| async move {
        let mut all = Vec::new();
        for shard in 0..INDEX_SHARDS {
            let query = IndexQuery {
                index,
                status,
                shard,
                prefix: None,
                after: None,
                ascending,
                filters: Vec::new(),
            };
            let users = store.query_index(&query, 100).await.unwrap();
            let keys: Vec<String> = users.iter().map(|u| index.sort_key(u)).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            if !ascending {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "{index:?} shard {shard}");
            assert_eq!(store.index_keys(&query, 100).await.unwrap(), keys);
            assert_eq!(store.count_index(&query).await.unwrap(), keys.len() as u64);
            all.extend(users);
        }
        all
    };
    for index in [
        UserIndex::CreatedAt,
        UserIndex::Email,
        UserIndex::FirstName,
        UserIndex::LastName,
    ] {
        assert_eq!(rows(index, Status::Active, true).await.len(), 5);
        assert_eq!(rows(index, Status::Active, false).await.len(), 5);
        let inactive_rows = rows(index, Status::Inactive, true).await;
        assert_eq!(
            inactive_rows.iter().map(|u| u.id).collect::<Vec<_>>(),
            [inactive.id]
        );
    }
    // A range: a prefix, a start after a key, a row filter; a limit.
    let shard = index_shard(late.id);
    let query = |prefix: Option<&str>, after: Option<String>, filters| IndexQuery {
        index: UserIndex::Email,
        status: Status::Active,
        shard,
        prefix: prefix.map(str::to_owned),
        after,
        ascending: true,
        filters,
    };
    let found = store
        .query_index(
            &query(Some("LATE".to_lowercase().as_str()), None, Vec::new()),
            10,
        )
        .await
        .unwrap();
    assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), [late.id]);
    let after_late = Some(UserIndex::Email.sort_key(&late));
    let none = store
        .query_index(&query(Some("late"), after_late, Vec::new()), 10)
        .await
        .unwrap();
    assert!(none.is_empty());
    let no_grace = store
        .query_index(
            &query(None, None, vec![RowFilter::FirstName("Grace".into())]),
            10,
        )
        .await
        .unwrap();
    assert!(no_grace.is_empty());
    let by_last = IndexQuery {
        index: UserIndex::LastName,
        status: Status::Inactive,
        shard: index_shard(inactive.id),
        prefix: Some(UserIndex::exact_prefix("LOVELACE")),
        after: None,
        ascending: false,
        filters: vec![RowFilter::LastName("Lovelace".into())],
    };
    assert_eq!(store.count_index(&by_last).await.unwrap(), 1);

    // A status change moves the user between partitions and counters; deleting removes it.
    let mut reactivated = next_version(&inactive);
    reactivated.status = Status::Active;
    store
        .save_user(&reactivated, &inactive, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .count_users(UserPartition::Status(Status::Inactive))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count_users(UserPartition::Status(Status::Active))
            .await
            .unwrap(),
        6
    );
    assert!(
        rows(UserIndex::LastName, Status::Inactive, true)
            .await
            .is_empty()
    );
    let mut gone = next_version(&reactivated);
    gone.status = Status::Deleted;
    store.save_user(&gone, &reactivated, None).await.unwrap();
    assert_eq!(store.count_users(UserPartition::Live).await.unwrap(), 5);
    for index in [UserIndex::CreatedAt, UserIndex::LastName] {
        let ids: Vec<_> = rows(index, Status::Active, true)
            .await
            .iter()
            .map(|u| u.id)
            .collect();
        assert!(!ids.contains(&inactive.id), "{index:?}");
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        super::run_all(&crate::store::memory::MemoryStore::new()).await;
    }
}

//! The contract of `TokenStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use tokio::task::JoinSet;

use crate::domain::email_token::{EmailToken, MailLog, TokenKind, TokenStore};
use crate::domain::ids::UserId;
use crate::domain::security_event::{EventType, SecurityEvent, SecurityEventStore};
use crate::domain::user::UserStore;
use crate::domain::user::{Status, User};
use crate::domain::{ListStart, StoreError};

/// Now, at the microsecond precision that stored timestamps keep.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.microsecond() * 1000)
        .expect("microseconds fit")
}

fn user(email: &str) -> User {
    let now = now();
    User {
        id: UserId::new(),
        email: email.to_owned(),
        email_verified: false,
        first_name: None,
        last_name: None,
        full_name: None,
        status: Status::Active,
        roles: Vec::new(),
        marketing_opt_in: false,
        tos_agreed_at: Some(now),
        password_hash: "$argon2id$before".into(),
        version: 1,
        session_epoch: 0,
        mobile: None,
        pending_mobile: None,
        factors: Default::default(),
        created_at: now,
        updated_at: now,
    }
}

fn token(kind: TokenKind, user: &User, expires_at: OffsetDateTime) -> EmailToken {
    EmailToken {
        kind,
        hash: crate::security::crypto::sha256_hex(&crate::security::crypto::random_token()),
        user_id: user.id,
        email_key: user.email_key(),
        session_epoch: user.session_epoch,
        expires_at,
    }
}

fn changed(previous: &User) -> User {
    let mut user = previous.clone();
    user.version += 1;
    user.session_epoch += 1;
    user.password_hash = "$argon2id$after".into();
    user
}

/// Runs every check on a store (users are created with fresh emails, so it need not be empty).
pub async fn run_all<S: UserStore + TokenStore + SecurityEventStore + 'static>(store: Arc<S>) {
    tokens_round_trip_by_kind_and_hash(&*store).await;
    a_token_is_redeemed_once_with_its_user_change(&*store).await;
    an_expired_token_is_not_redeemed(&*store).await;
    a_stale_user_keeps_the_token(&*store).await;
    concurrent_redemptions_have_one_winner(&store).await;
    mail_logs_are_versioned(&*store).await;
}

async fn tokens_round_trip_by_kind_and_hash<S: UserStore + TokenStore>(store: &S) {
    let ada = user(&format!("{}@tokens.example", UserId::new()));
    let expires_at = now() + Duration::hours(1);
    let recovery = token(TokenKind::Recovery, &ada, expires_at);
    store.put_token(&recovery).await.unwrap();
    assert_eq!(
        store
            .get_token(TokenKind::Recovery, &recovery.hash)
            .await
            .unwrap(),
        Some(recovery.clone())
    );
    assert_eq!(
        store
            .get_token(TokenKind::Verification, &recovery.hash)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store.put_token(&recovery).await,
        Err(StoreError::VersionConflict)
    ));
}

async fn a_token_is_redeemed_once_with_its_user_change<
    S: UserStore + TokenStore + SecurityEventStore,
>(
    store: &S,
) {
    let now = now();
    let ada = user(&format!("{}@tokens.example", UserId::new()));
    store.create_user(&ada).await.unwrap();
    let issued = token(TokenKind::Verification, &ada, now + Duration::hours(24));
    store.put_token(&issued).await.unwrap();
    let after = changed(&ada);
    let verified = SecurityEvent::new(ada.id, EventType::EmailVerified, now);
    store
        .redeem_token(issued.kind, &issued.hash, now, &after, &ada, &[verified])
        .await
        .unwrap();
    let events = store
        .list_events(ada.id, ListStart::Skip(0), 10, now)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventType::EmailVerified]
    );
    assert_eq!(store.get_user(ada.id).await.unwrap(), Some(after.clone()));
    assert_eq!(
        store.get_token(issued.kind, &issued.hash).await.unwrap(),
        None
    );
    let twice = SecurityEvent::new(ada.id, EventType::EmailVerified, now);
    let again = store
        .redeem_token(
            issued.kind,
            &issued.hash,
            now,
            &changed(&after),
            &after,
            &[twice],
        )
        .await;
    assert!(matches!(again, Err(StoreError::NotFound)));
    assert_eq!(store.count_events(ada.id, now).await.unwrap(), 1);
}

async fn an_expired_token_is_not_redeemed<S: UserStore + TokenStore>(store: &S) {
    let now = now();
    let ada = user(&format!("{}@tokens.example", UserId::new()));
    store.create_user(&ada).await.unwrap();
    let issued = token(TokenKind::Recovery, &ada, now - Duration::seconds(1));
    store.put_token(&issued).await.unwrap();
    let result = store
        .redeem_token(issued.kind, &issued.hash, now, &changed(&ada), &ada, &[])
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)));
    assert_eq!(store.get_user(ada.id).await.unwrap(), Some(ada));
}

async fn a_stale_user_keeps_the_token<S: UserStore + TokenStore>(store: &S) {
    let now = now();
    let ada = user(&format!("{}@tokens.example", UserId::new()));
    store.create_user(&ada).await.unwrap();
    let newer = changed(&ada);
    store.save_user(&newer, &ada, None).await.unwrap();
    let issued = token(TokenKind::Recovery, &ada, now + Duration::hours(1));
    store.put_token(&issued).await.unwrap();
    let result = store
        .redeem_token(issued.kind, &issued.hash, now, &changed(&ada), &ada, &[])
        .await;
    assert!(matches!(result, Err(StoreError::VersionConflict)));
    assert!(
        store
            .get_token(issued.kind, &issued.hash)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.get_user(ada.id).await.unwrap(), Some(newer));
}

async fn concurrent_redemptions_have_one_winner<S: UserStore + TokenStore + 'static>(
    store: &Arc<S>,
) {
    let now = now();
    let ada = user(&format!("{}@tokens.example", UserId::new()));
    store.create_user(&ada).await.unwrap();
    let issued = token(TokenKind::Recovery, &ada, now + Duration::hours(1));
    store.put_token(&issued).await.unwrap();
    let after = changed(&ada);
    let mut attempts = JoinSet::new();
    for _ in 0..20 {
        let (store, issued, after, ada) =
            (store.clone(), issued.clone(), after.clone(), ada.clone());
        attempts.spawn(async move {
            store
                .redeem_token(issued.kind, &issued.hash, now, &after, &ada, &[])
                .await
        });
    }
    let results: Vec<_> = attempts.join_all().await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(()) | Err(StoreError::NotFound | StoreError::VersionConflict)
    )));
}

async fn mail_logs_are_versioned<S: TokenStore>(store: &S) {
    let email_key = format!("{}@tokens.example", UserId::new());
    assert_eq!(store.get_mail_log(&email_key).await.unwrap(), None);
    let first = MailLog {
        email_key: email_key.clone(),
        sent_at: vec![now()],
        version: 1,
    };
    store.put_mail_log(&first, None).await.unwrap();
    assert!(matches!(
        store.put_mail_log(&first, None).await,
        Err(StoreError::VersionConflict)
    ));
    let mut second = first.clone();
    second.sent_at.push(first.sent_at[0] + Duration::minutes(1));
    second.version = 2;
    store.put_mail_log(&second, Some(1)).await.unwrap();
    assert!(matches!(
        store.put_mail_log(&second, Some(1)).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.get_mail_log(&email_key).await.unwrap(), Some(second));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::memory::MemoryStore;

    #[tokio::test(flavor = "multi_thread")]
    async fn memory_store_meets_the_token_contract() {
        super::run_all(Arc::new(MemoryStore::new())).await;
    }
}

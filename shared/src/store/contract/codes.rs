//! The contract of `CodeStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use tokio::task::JoinSet;

use crate::domain::code::{CodeChange, CodeStore, FactorGuard, OneTimeCode, SmsLog};
use crate::domain::ids::UserId;
use crate::domain::security_event::{EventType, SecurityEvent, SecurityEventStore};
use crate::domain::user::UserStore;
use crate::domain::user::{Status, User};
use crate::domain::{ListStart, StoreError};

const MAX: u32 = 5;

/// Now, at the microsecond precision that stored timestamps keep.
fn now() -> OffsetDateTime {
    crate::domain::clock::Clock::truncate(OffsetDateTime::now_utc())
}

fn user() -> User {
    let now = now();
    User {
        id: UserId::new(),
        email: format!("{}@codes.example", UserId::new()),
        email_verified: false,
        first_name: None,
        last_name: None,
        full_name: None,
        status: Status::Active,
        roles: Vec::new(),
        marketing_opt_in: false,
        tos_agreed_at: Some(now),
        password_hash: "$argon2id$fake".into(),
        version: 1,
        session_epoch: 0,
        mobile: None,
        pending_mobile: None,
        factors: Default::default(),
        created_at: now,
        updated_at: now,
    }
}

fn code(user: UserId, expires_at: OffsetDateTime) -> OneTimeCode {
    OneTimeCode {
        user_id: user,
        id: crate::security::crypto::random_token(),
        hmac: crate::security::crypto::random_token(),
        phone: "+14155550123".into(),
        expires_at,
        attempts: 0,
    }
}

fn with_pending(previous: &User) -> User {
    let mut user = previous.clone();
    user.version += 1;
    user.pending_mobile = Some("+14155550123".into());
    user
}

/// Runs every check on a store (each uses fresh users, so it need not be empty).
pub async fn run_all<S: UserStore + CodeStore + SecurityEventStore + 'static>(store: Arc<S>) {
    codes_round_trip_and_count_their_checks(&*store).await;
    a_new_code_ends_the_previous_one(&*store).await;
    expired_codes_are_not_checked(&*store).await;
    a_code_is_consumed_once(&*store).await;
    concurrent_checks_get_at_most_the_allowed_attempts(&store).await;
    user_saves_carry_their_code_change(&*store).await;
    a_stale_user_or_a_replaced_code_changes_nothing(&*store).await;
    sms_logs_are_versioned(&*store).await;
    the_daily_sms_cap_counts_each_day_apart(&*store).await;
    concurrent_texts_never_pass_the_daily_cap(&store).await;
    a_code_is_read_without_spending_a_check(&*store).await;
    factor_guards_are_versioned(&*store).await;
}

/// A day no other run uses (the counters are service-wide).
fn fresh_day() -> String {
    let offset = (UserId::new().as_uuid().as_u128() % 300_000) as i64;
    let day = time::Date::from_calendar_date(2100, time::Month::January, 1).unwrap()
        + Duration::days(offset);
    day.to_string()
}

async fn the_daily_sms_cap_counts_each_day_apart<S: CodeStore>(store: &S) {
    let (day, other_day) = (fresh_day(), fresh_day());
    assert!(store.take_daily_sms(&day, 2).await.unwrap());
    assert!(store.take_daily_sms(&day, 2).await.unwrap());
    assert!(!store.take_daily_sms(&day, 2).await.unwrap());
    assert!(store.take_daily_sms(&other_day, 2).await.unwrap());
    store.return_daily_sms(&day).await.unwrap();
    assert!(store.take_daily_sms(&day, 2).await.unwrap());
    assert!(!store.take_daily_sms(&day, 2).await.unwrap());
    // Nothing to take back is no error.
    store.return_daily_sms(&fresh_day()).await.unwrap();
}

async fn concurrent_texts_never_pass_the_daily_cap<S: CodeStore + 'static>(store: &Arc<S>) {
    let day = fresh_day();
    let mut takes = JoinSet::new();
    for _ in 0..20 {
        let (store, day) = (store.clone(), day.clone());
        takes.spawn(async move { store.take_daily_sms(&day, 7).await.unwrap() });
    }
    let taken = takes.join_all().await.into_iter().filter(|t| *t).count();
    assert_eq!(taken, 7);
}

async fn a_code_is_read_without_spending_a_check<S: CodeStore>(store: &S) {
    let user = UserId::new();
    assert_eq!(store.get_code(user).await.unwrap(), None);
    let stored = code(user, now() + Duration::minutes(10));
    store.put_code(&stored).await.unwrap();
    assert_eq!(store.get_code(user).await.unwrap(), Some(stored.clone()));
    assert_eq!(store.get_code(user).await.unwrap().unwrap().attempts, 0);
}

async fn codes_round_trip_and_count_their_checks<S: CodeStore>(store: &S) {
    let user = UserId::new();
    assert_eq!(store.take_attempt(user, now(), MAX).await.unwrap(), None);
    let stored = code(user, now() + Duration::minutes(10));
    store.put_code(&stored).await.unwrap();
    for attempt in 1..=MAX {
        let taken = store.take_attempt(user, now(), MAX).await.unwrap();
        let expected = OneTimeCode {
            attempts: attempt,
            ..stored.clone()
        };
        assert_eq!(taken, Some(expected));
    }
    assert_eq!(store.take_attempt(user, now(), MAX).await.unwrap(), None);
    assert_eq!(store.take_attempt(user, now(), MAX).await.unwrap(), None);
}

async fn a_new_code_ends_the_previous_one<S: CodeStore>(store: &S) {
    let user = UserId::new();
    let first = code(user, now() + Duration::minutes(10));
    store.put_code(&first).await.unwrap();
    for _ in 0..MAX {
        store.take_attempt(user, now(), MAX).await.unwrap();
    }
    let second = code(user, now() + Duration::minutes(10));
    store.put_code(&second).await.unwrap();
    assert!(!store.consume_code(user, &first.id).await.unwrap());
    let taken = store.take_attempt(user, now(), MAX).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.attempts), (second.id, 1));
}

async fn expired_codes_are_not_checked<S: CodeStore>(store: &S) {
    let user = UserId::new();
    let expires_at = now() + Duration::minutes(10);
    store.put_code(&code(user, expires_at)).await.unwrap();
    assert_eq!(
        store.take_attempt(user, expires_at, MAX).await.unwrap(),
        None
    );
    assert!(
        store
            .take_attempt(user, expires_at - Duration::seconds(1), MAX)
            .await
            .unwrap()
            .is_some()
    );
}

async fn a_code_is_consumed_once<S: CodeStore>(store: &S) {
    let user = UserId::new();
    let stored = code(user, now() + Duration::minutes(10));
    store.put_code(&stored).await.unwrap();
    assert!(store.consume_code(user, &stored.id).await.unwrap());
    assert!(!store.consume_code(user, &stored.id).await.unwrap());
    assert_eq!(store.take_attempt(user, now(), MAX).await.unwrap(), None);
}

async fn concurrent_checks_get_at_most_the_allowed_attempts<S: CodeStore + 'static>(
    store: &Arc<S>,
) {
    let user = UserId::new();
    store
        .put_code(&code(user, now() + Duration::minutes(10)))
        .await
        .unwrap();
    let mut checks = JoinSet::new();
    for _ in 0..50 {
        let store = store.clone();
        checks.spawn(async move { store.take_attempt(user, now(), MAX).await });
    }
    let results = checks.join_all().await;
    let granted: Vec<u32> = results
        .into_iter()
        .filter_map(|result| result.unwrap().map(|code| code.attempts))
        .collect();
    let mut sorted = granted.clone();
    sorted.sort();
    assert_eq!(sorted, vec![1, 2, 3, 4, 5], "{granted:?}");
}

async fn user_saves_carry_their_code_change<S: UserStore + CodeStore + SecurityEventStore>(
    store: &S,
) {
    let ada = user();
    store.create_user(&ada).await.unwrap();
    let stored = code(ada.id, now() + Duration::minutes(10));
    let pending = with_pending(&ada);
    store
        .save_user_with_code(&pending, &ada, CodeChange::Put(&stored), &[])
        .await
        .unwrap();
    assert_eq!(
        store.get_user(ada.id).await.unwrap().as_ref(),
        Some(&pending)
    );
    assert_eq!(
        store
            .take_attempt(ada.id, now(), MAX)
            .await
            .unwrap()
            .map(|c| c.id),
        Some(stored.id.clone())
    );

    let mut enabled = pending.clone();
    enabled.version += 1;
    enabled.mobile = enabled.pending_mobile.take();
    store
        .save_user_with_code(
            &enabled,
            &pending,
            CodeChange::Consume(&stored.id),
            &[event(&ada)],
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_user(ada.id).await.unwrap().as_ref(),
        Some(&enabled)
    );
    assert_eq!(events_of(store, &ada).await, [EventType::TwoFactorEnabled]);
    assert_eq!(store.take_attempt(ada.id, now(), MAX).await.unwrap(), None);

    store
        .put_code(&code(ada.id, now() + Duration::minutes(10)))
        .await
        .unwrap();
    let mut removed = enabled.clone();
    removed.version += 1;
    removed.mobile = None;
    store
        .save_user_with_code(&removed, &enabled, CodeChange::Delete, &[])
        .await
        .unwrap();
    assert_eq!(
        store.get_user(ada.id).await.unwrap().as_ref(),
        Some(&removed)
    );
    assert_eq!(store.take_attempt(ada.id, now(), MAX).await.unwrap(), None);
}

async fn a_stale_user_or_a_replaced_code_changes_nothing<
    S: UserStore + CodeStore + SecurityEventStore,
>(
    store: &S,
) {
    let ada = user();
    store.create_user(&ada).await.unwrap();
    let pending = with_pending(&ada);
    store
        .save_user_with_code(&pending, &ada, CodeChange::Delete, &[])
        .await
        .unwrap();

    let stored = code(ada.id, now() + Duration::minutes(10));
    let stale = with_pending(&ada);
    assert!(matches!(
        store
            .save_user_with_code(&stale, &ada, CodeChange::Put(&stored), &[event(&ada)])
            .await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.take_attempt(ada.id, now(), MAX).await.unwrap(), None);

    store.put_code(&stored).await.unwrap();
    let mut enabled = pending.clone();
    enabled.version += 1;
    enabled.mobile = enabled.pending_mobile.take();
    assert!(matches!(
        store
            .save_user_with_code(
                &enabled,
                &pending,
                CodeChange::Consume("another-code"),
                &[event(&ada)],
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.get_user(ada.id).await.unwrap().as_ref(),
        Some(&pending)
    );
    assert!(store.consume_code(ada.id, &stored.id).await.unwrap());
    assert!(events_of(store, &ada).await.is_empty());
}

fn event(user: &User) -> SecurityEvent {
    SecurityEvent::new(user.id, EventType::TwoFactorEnabled, now())
}

async fn events_of<S: SecurityEventStore>(store: &S, user: &User) -> Vec<EventType> {
    store
        .list_events(user.id, ListStart::Skip(0), 100, now())
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect()
}

async fn factor_guards_are_versioned<S: CodeStore>(store: &S) {
    let user = UserId::new();
    assert_eq!(store.get_factor_guard(user).await.unwrap(), None);
    let mut guard = FactorGuard::new(user);
    guard.reserve(true, now());
    guard.last_step = Some(56_666_667);
    guard.version = 1;
    store.put_factor_guard(&guard, None).await.unwrap();
    assert!(matches!(
        store.put_factor_guard(&guard, None).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(
        store.get_factor_guard(user).await.unwrap().as_ref(),
        Some(&guard)
    );
    let mut next = guard.clone();
    next.succeed(true, guard.window_start);
    next.version = 2;
    assert!(matches!(
        store.put_factor_guard(&next, Some(7)).await,
        Err(StoreError::VersionConflict)
    ));
    store.put_factor_guard(&next, Some(1)).await.unwrap();
    assert_eq!(store.get_factor_guard(user).await.unwrap(), Some(next));
}

async fn sms_logs_are_versioned<S: CodeStore>(store: &S) {
    let user = UserId::new();
    assert_eq!(store.get_sms_log(user).await.unwrap(), None);
    let first = SmsLog {
        user_id: user,
        sent_at: vec![now()],
        version: 1,
    };
    store.put_sms_log(&first, None).await.unwrap();
    assert!(matches!(
        store.put_sms_log(&first, None).await,
        Err(StoreError::VersionConflict)
    ));
    let second = SmsLog {
        sent_at: vec![first.sent_at[0], now() + Duration::seconds(31)],
        version: 2,
        ..first.clone()
    };
    store.put_sms_log(&second, Some(1)).await.unwrap();
    assert!(matches!(
        store.put_sms_log(&second, Some(1)).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.get_sms_log(user).await.unwrap(), Some(second));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::memory::MemoryStore;

    #[tokio::test(flavor = "multi_thread")]
    async fn memory_store_meets_the_code_contract() {
        super::run_all(Arc::new(MemoryStore::new())).await;
    }
}

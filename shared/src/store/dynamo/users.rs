//! `UserStore` on DynamoDB: `USER#<uuid>` items, `EMAIL#<email>` claims and the listing
//! indexes.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, ReturnConsumedCapacity, Select,
    TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use super::{
    DynamoStore, Item, backend, classify, email_pk, from_item, key, n, parse_ts, put, put_event, s,
    session_pk, to_item, transaction_error, ts, user_pk,
};
use crate::domain::StoreError;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::{
    AppFactors, COUNTER_SHARDS, IndexQuery, LISTED_STATUSES, Role, RowFilter, Status, User,
    UserIndex, UserPartition, UserStore, index_partition, index_shard,
};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserItem {
    pk: String,
    sk: String,
    uuid: UserId,
    email: String,
    email_lower: String,
    email_verified: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    full_name: Option<String>,
    status: Status,
    roles: Vec<Role>,
    marketing_opt_in: bool,
    tos_agreed_at: Option<String>,
    password_hash: String,
    version: u64,
    session_epoch: u64,
    mobile: Option<String>,
    pending_mobile: Option<String>,
    /// Sealed authenticator-app secrets and recovery-code HMACs (absent on older items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    totp_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_totp_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    recovery_codes: Vec<String>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name_sk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name_sk: Option<String>,
    /// Written by every write since the sharded counters: the user is counted in
    /// `COUNT#<status>#…` (while live). An item without it waits for `cargo xtask migrate`.
    #[serde(default)]
    counted: bool,
}

impl UserItem {
    pub(super) fn from_user(user: &User) -> Self {
        let live = user.status != Status::Deleted;
        let partition = live.then(|| index_partition(user.status, index_shard(user.id)));
        let sort_key = |index: UserIndex| live.then(|| index.sort_key(user));
        Self {
            pk: user_pk(user.id),
            sk: "PROFILE".into(),
            uuid: user.id,
            email: user.email.clone(),
            email_lower: user.email_key(),
            email_verified: user.email_verified,
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            full_name: user.full_name.clone(),
            status: user.status,
            roles: user.roles.clone(),
            marketing_opt_in: user.marketing_opt_in,
            tos_agreed_at: user.tos_agreed_at.map(ts),
            password_hash: user.password_hash.clone(),
            version: user.version,
            session_epoch: user.session_epoch,
            mobile: user.mobile.clone(),
            pending_mobile: user.pending_mobile.clone(),
            totp_secret: user.factors.totp_secret.clone(),
            pending_totp_secret: user.factors.pending_totp_secret.clone(),
            recovery_codes: user.factors.recovery_codes.clone(),
            created_at: ts(user.created_at),
            updated_at: ts(user.updated_at),
            gsi1pk: partition.clone(),
            gsi1sk: sort_key(UserIndex::CreatedAt),
            gsi2pk: partition,
            gsi2sk: sort_key(UserIndex::Email),
            first_name_sk: sort_key(UserIndex::FirstName),
            last_name_sk: sort_key(UserIndex::LastName),
            counted: true,
        }
    }

    fn into_user(self) -> Result<User, StoreError> {
        Ok(User {
            id: self.uuid,
            email: self.email,
            email_verified: self.email_verified,
            first_name: self.first_name,
            last_name: self.last_name,
            full_name: self.full_name,
            status: self.status,
            roles: self.roles,
            marketing_opt_in: self.marketing_opt_in,
            tos_agreed_at: self.tos_agreed_at.as_deref().map(parse_ts).transpose()?,
            password_hash: self.password_hash,
            version: self.version,
            session_epoch: self.session_epoch,
            mobile: self.mobile,
            pending_mobile: self.pending_mobile,
            factors: AppFactors {
                totp_secret: self.totp_secret,
                pending_totp_secret: self.pending_totp_secret,
                recovery_codes: self.recovery_codes,
            },
            created_at: parse_ts(&self.created_at)?,
            updated_at: parse_ts(&self.updated_at)?,
        })
    }
}

pub(super) fn user_from_item(item: Item) -> Result<User, StoreError> {
    from_item::<UserItem>(item)?.into_user()
}

/// The sort key of a counter item (`pk = COUNT#<status>#<shard>`), whose `users` (N) counts
/// the live users of that status it was given.
pub const COUNTER_SK: &str = "COUNT";

pub fn counter_pk(status: Status, shard: u32) -> String {
    format!("COUNT#{}#{shard}", status.as_str())
}

/// What a counter counts: the live users of a status, or those of them with one exact first
/// or last name (`NAMECOUNT#<status>#<shard>#<firstName|lastName>#<name>`, the name last so
/// that nothing in it can be mistaken for a separator).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Counter {
    status: Status,
    name: Option<(&'static str, String)>,
}

impl Counter {
    fn pk(&self, shard: u32) -> String {
        match &self.name {
            None => counter_pk(self.status, shard),
            Some((column, name)) => {
                format!("NAMECOUNT#{}#{shard}#{column}#{name}", self.status.as_str())
            }
        }
    }

    /// The counters a user is counted in (none when deleted).
    fn of(user: &User) -> Vec<Counter> {
        if user.status == Status::Deleted {
            return Vec::new();
        }
        let mut counters = vec![Counter {
            status: user.status,
            name: None,
        }];
        for (column, name) in [
            ("firstName", &user.first_name),
            ("lastName", &user.last_name),
        ] {
            if let Some(name) = name {
                counters.push(Counter {
                    status: user.status,
                    name: Some((column, name.clone())),
                });
            }
        }
        counters
    }
}

/// The item of `user`, as every write stores it (for bulk loads).
pub fn user_item(user: &User) -> Result<Item, StoreError> {
    to_item(&UserItem::from_user(user))
}

/// The email claim of a live `user` (none for a deleted one), as bulk loads write it next to
/// the user: what makes an exact `filter[email]` one `GetItem`.
pub fn claim_item(user: &User) -> Option<Item> {
    (user.status != Status::Deleted).then(|| {
        let mut claim = key(email_pk(&user.email_key()), "EMAIL");
        claim.insert("userId".into(), s(user.id.to_string()));
        claim
    })
}

/// The counter items (each on shard 0) that count `users`, as bulk loads write them next to
/// the users.
pub fn counter_items<'a>(users: impl IntoIterator<Item = &'a User>) -> Vec<Item> {
    let mut counts: HashMap<String, i64> = HashMap::new();
    for user in users {
        for counter in Counter::of(user) {
            *counts.entry(counter.pk(0)).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(pk, count)| {
            let mut item = key(pk, COUNTER_SK);
            item.insert("users".into(), n(count));
            item
        })
        .collect()
}

/// Turns the stored `user` back into an item written before the counters (no `counted`, not
/// in any counter), as tests of the first save of an unmigrated user need: the reverse of
/// [`migration_update`], in one transaction.
pub async fn unmigrate(store: &DynamoStore, user: &User) -> Result<(), StoreError> {
    let mut item = to_item(&UserItem::from_user(user))?;
    item.remove("counted");
    let mut items = vec![put(
        &store.table,
        item,
        "version = :v",
        Some(HashMap::from([(":v".to_owned(), n(user.version))])),
    )?];
    for counter in Counter::of(user) {
        items.push(counter_update(&store.table, &counter, -1)?);
    }
    store
        .client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
        .map_err(|error| transaction_error(error, |_| StoreError::VersionConflict))?;
    Ok(())
}

/// The update `cargo xtask migrate` applies to a user item written before the sharded indexes
/// and counters (no `counted`): its index attributes and `counted`, on condition that it is still
/// unmigrated at this version, and the raise of one counter shard, in one transaction.
pub fn migration_update(table: &str, item: Item) -> Result<Vec<TransactWriteItem>, StoreError> {
    let user = user_from_item(item)?;
    let fresh = to_item(&UserItem::from_user(&user))?;
    let mut items = vec![
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(fresh))
                    .condition_expression("attribute_not_exists(counted) AND version = :v")
                    .expression_attribute_values(":v", n(user.version))
                    .build()
                    .map_err(backend)?,
            )
            .build(),
    ];
    for (counter, delta) in counter_moves(&user, None) {
        items.push(counter_update(table, &counter, delta)?);
    }
    Ok(items)
}

/// `ADD users :delta` on a random shard of the counter.
fn counter_update(
    table: &str,
    counter: &Counter,
    delta: i64,
) -> Result<TransactWriteItem, StoreError> {
    let shard = u32::from(uuid::Uuid::new_v4().as_bytes()[0]) % COUNTER_SHARDS;
    Ok(TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .set_key(Some(key(counter.pk(shard), COUNTER_SK)))
                .update_expression("ADD #users :delta")
                .expression_attribute_names("#users", "users")
                .expression_attribute_values(":delta", n(delta))
                .build()
                .map_err(backend)?,
        )
        .build())
}

/// How the counters move when `previous` becomes `user` (`None`: created, or never counted).
fn counter_moves(user: &User, previous: Option<&User>) -> Vec<(Counter, i64)> {
    let before = previous.map(Counter::of).unwrap_or_default();
    let after = Counter::of(user);
    let mut moves: Vec<(Counter, i64)> = before
        .iter()
        .filter(|c| !after.contains(c))
        .map(|c| (c.clone(), -1))
        .collect();
    moves.extend(
        after
            .iter()
            .filter(|c| !before.contains(c))
            .map(|c| (c.clone(), 1)),
    );
    moves
}

/// Whether a cancelled transaction failed only on a conflict with another transaction over the
/// items from `first_counter` on (counter shards, which any user write may touch): worth
/// retrying on other shards.
fn counter_conflict(
    error: &SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
    first_counter: usize,
) -> bool {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
        error.as_service_error()
    else {
        return false;
    };
    let reasons = cancel.cancellation_reasons();
    let failed: Vec<usize> = reasons
        .iter()
        .enumerate()
        .filter(|(_, r)| r.code().is_some_and(|code| code != "None"))
        .map(|(i, _)| i)
        .collect();
    !failed.is_empty()
        && failed
            .iter()
            .all(|&i| i >= first_counter && reasons[i].code() == Some("TransactionConflict"))
}

/// Runs `items` plus the counter `moves` as one transaction, retrying (on fresh random shards)
/// while only a counter shard conflicts with a concurrent write.
async fn transact_counted(
    store: &DynamoStore,
    items: Vec<TransactWriteItem>,
    moves: &[(Counter, i64)],
) -> Result<(), SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>> {
    let mut attempt = 0;
    loop {
        let mut all = items.clone();
        let first_counter = all.len();
        for (counter, delta) in moves {
            all.push(
                counter_update(&store.table, counter, *delta)
                    .expect("a counter update has every required field"),
            );
        }
        match store
            .client
            .transact_write_items()
            .set_transact_items(Some(all))
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(error) if attempt < 5 && counter_conflict(&error, first_counter) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The condition of a user put over the stored item at `version`: `counted` (written since
/// the counters), or not yet migrated.
fn user_condition(version: u64, counted: bool) -> (&'static str, HashMap<String, AttributeValue>) {
    let mut values = HashMap::from([(":v".to_owned(), n(version))]);
    if counted {
        values.insert(":true".to_owned(), AttributeValue::Bool(true));
        ("version = :v AND counted = :true", values)
    } else {
        ("version = :v AND attribute_not_exists(counted)", values)
    }
}

/// Runs a save of `user` over `previous` that moves no counter (neither status nor names
/// change: a code or a mailed token's save) in one transaction with `others`, the user's put
/// first. A user item written before the counters (no `counted`: not yet migrated) fails the
/// first attempt's condition; the second saves it counting it, as a migration would.
/// `reasons_to_error` maps a failed item's index (0: the user, a real version conflict) as
/// `transaction_error` does.
pub(super) async fn save_uncounted_moves(
    store: &DynamoStore,
    user: &User,
    previous: &User,
    others: Vec<TransactWriteItem>,
    reasons_to_error: impl Fn(usize) -> StoreError,
) -> Result<(), StoreError> {
    for counted in [true, false] {
        let (condition, values) = user_condition(previous.version, counted);
        let mut items = vec![put(
            &store.table,
            to_item(&UserItem::from_user(user))?,
            condition,
            Some(values),
        )?];
        items.extend(others.iter().cloned());
        let moves = if counted {
            Vec::new()
        } else {
            counter_moves(user, None)
        };
        let user_failed = std::sync::atomic::AtomicBool::new(false);
        match transact_counted(store, items, &moves).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                let error = transaction_error(error, |index| {
                    user_failed.store(index == 0, std::sync::atomic::Ordering::Relaxed);
                    reasons_to_error(index)
                });
                if !(counted && user_failed.load(std::sync::atomic::Ordering::Relaxed)) {
                    return Err(error);
                }
            }
        }
    }
    Err(StoreError::VersionConflict)
}

/// The index, its partition key and sort key attributes.
fn index_attributes(index: UserIndex) -> (&'static str, &'static str, &'static str) {
    match index {
        UserIndex::CreatedAt => ("gsi1", "gsi1pk", "gsi1sk"),
        UserIndex::Email => ("gsi2", "gsi2pk", "gsi2sk"),
        UserIndex::FirstName => ("usersByFirstName", "gsi1pk", "firstNameSk"),
        UserIndex::LastName => ("usersByLastName", "gsi1pk", "lastNameSk"),
    }
}

/// Past every character a key holds after a prefix: the upper bound of a prefix range.
const KEY_END: char = '\u{10FFFF}';

/// The `Query` of one shard of one index, as `IndexQuery` describes it.
fn index_request(store: &DynamoStore, query: &IndexQuery) -> QueryFluentBuilder {
    let (index, pk_name, sk_name) = index_attributes(query.index);
    let mut names = HashMap::from([("#pk".to_owned(), pk_name.to_owned())]);
    let mut values = HashMap::from([(
        ":pk".to_owned(),
        s(index_partition(query.status, query.shard)),
    )]);
    let range = match (&query.prefix, &query.after) {
        (None, None) => None,
        (Some(prefix), None) => {
            values.insert(":prefix".into(), s(prefix));
            Some("begins_with(#sk, :prefix)")
        }
        (None, Some(after)) => {
            values.insert(":after".into(), s(after));
            Some(if query.ascending {
                "#sk > :after"
            } else {
                "#sk < :after"
            })
        }
        (Some(prefix), Some(after)) => {
            // One range condition only: BETWEEN includes `after`, which the read drops.
            values.insert(":after".into(), s(after));
            if query.ascending {
                values.insert(":end".into(), s(format!("{prefix}{KEY_END}")));
                Some("#sk BETWEEN :after AND :end")
            } else {
                values.insert(":prefix".into(), s(prefix));
                Some("#sk BETWEEN :prefix AND :after")
            }
        }
    };
    let key_condition = match range {
        Some(range) => {
            names.insert("#sk".into(), sk_name.to_owned());
            format!("#pk = :pk AND {range}")
        }
        None => "#pk = :pk".to_owned(),
    };
    let mut filters = Vec::new();
    for (i, filter) in query.filters.iter().enumerate() {
        let (attribute, value, expression) = match filter {
            RowFilter::FirstName(name) => ("firstName", name, format!("#f{i} = :f{i}")),
            RowFilter::LastName(name) => ("lastName", name, format!("#f{i} = :f{i}")),
            RowFilter::KeyPrefix(index, prefix) => (
                index_attributes(*index).2,
                prefix,
                format!("begins_with(#f{i}, :f{i})"),
            ),
        };
        names.insert(format!("#f{i}"), attribute.to_owned());
        values.insert(format!(":f{i}"), s(value));
        filters.push(expression);
    }
    store
        .client
        .query()
        .table_name(&store.table)
        .index_name(index)
        .key_condition_expression(key_condition)
        .set_filter_expression((!filters.is_empty()).then(|| filters.join(" AND ")))
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .scan_index_forward(query.ascending)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
}

impl DynamoStore {
    /// The sum of a counter's shards over the partition's statuses (`name`: a name counter).
    async fn sum_counters(
        &self,
        partition: UserPartition,
        name: Option<(&'static str, &str)>,
    ) -> Result<u64, StoreError> {
        let statuses: Vec<Status> = match partition {
            UserPartition::Live => LISTED_STATUSES.to_vec(),
            UserPartition::Status(Status::Deleted) => Vec::new(),
            UserPartition::Status(status) => vec![status],
        };
        let mut keys: Vec<Item> = statuses
            .iter()
            .flat_map(|status| {
                let counter = Counter {
                    status: *status,
                    name: name.map(|(column, name)| (column, name.to_owned())),
                };
                (0..COUNTER_SHARDS).map(move |shard| key(counter.pk(shard), COUNTER_SK))
            })
            .collect();
        let mut total: i64 = 0;
        while !keys.is_empty() {
            let looked_up = keys.len() as u64;
            let output = self
                .client
                .batch_get_item()
                .request_items(
                    &self.table,
                    KeysAndAttributes::builder()
                        .set_keys(Some(keys))
                        .projection_expression("#users")
                        .expression_attribute_names("#users", "users")
                        .build()
                        .map_err(backend)?,
                )
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(backend)?;
            let found = output
                .responses
                .and_then(|mut tables| tables.remove(&self.table))
                .unwrap_or_default();
            // Every key looked up is read (a missing one costs as much).
            self.reads.record(
                looked_up,
                output
                    .consumed_capacity
                    .map(|all| all.iter().filter_map(|c| c.capacity_units).sum()),
            );
            for item in found {
                if let Some(Ok(count)) = item
                    .get("users")
                    .and_then(|v| v.as_n().ok())
                    .map(|text| text.parse::<i64>())
                {
                    total += count;
                }
            }
            keys = output
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(&self.table))
                .map(|unprocessed| unprocessed.keys)
                .unwrap_or_default();
        }
        Ok(total.max(0) as u64)
    }

    /// Up to `limit` items of `query`, following its pages; only the sort key when `keys_only`.
    async fn index_items(
        &self,
        query: &IndexQuery,
        limit: usize,
        keys_only: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let sk_name = index_attributes(query.index).2;
        let mut request = index_request(self, query);
        if keys_only {
            request = request
                .projection_expression("#key")
                .expression_attribute_names("#key", sk_name);
        }
        // BETWEEN reads the `after` row too.
        let extra = usize::from(query.prefix.is_some() && query.after.is_some());
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        while items.len() < limit {
            let output = request
                .clone()
                .limit((limit - items.len()).saturating_add(extra).clamp(1, 1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            self.reads.record_query(&output);
            for item in output.items.unwrap_or_default() {
                let key = item.get(sk_name).and_then(|v| v.as_s().ok());
                if key.is_some() && key == query.after.as_ref() {
                    continue;
                }
                if items.len() < limit {
                    items.push(item);
                }
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user_recording(
        &self,
        user: &User,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        let user_item = to_item(&UserItem::from_user(user))?;
        let mut claim = key(email_pk(&user.email_key()), "EMAIL");
        claim.insert("userId".into(), s(user.id.to_string()));
        let mut items = vec![
            put(&self.table, user_item, "attribute_not_exists(pk)", None)?,
            put(&self.table, claim, "attribute_not_exists(pk)", None)?,
        ];
        items.extend(events_puts(&self.table, events)?);
        transact_counted(self, items, &counter_moves(user, None))
            .await
            .map_err(|error| transaction_error(error, |_| StoreError::EmailTaken))?;
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(id), "PROFILE")))
            .send()
            .await
            .map_err(backend)?;
        self.reads.record(u64::from(output.item.is_some()), None);
        output.item.map(user_from_item).transpose()
    }

    async fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError> {
        let claim = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(email_pk(email_key), "EMAIL")))
            .send()
            .await
            .map_err(backend)?;
        self.reads.record(u64::from(claim.item.is_some()), None);
        let Some(user_id) = claim
            .item
            .as_ref()
            .and_then(|item| item.get("userId"))
            .and_then(|value| value.as_s().ok())
            .and_then(|text| UserId::parse(text))
        else {
            return Ok(None);
        };
        Ok(self
            .get_user(user_id)
            .await?
            .filter(|user| user.status != Status::Deleted))
    }

    async fn save_user_recording(
        &self,
        user: &User,
        previous: &User,
        keep_session: Option<SessionId>,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        match self
            .save_once(user, previous, keep_session, events, true)
            .await
        {
            // The stored item may predate the counters (not yet migrated): it was never
            // counted, so it is saved again counting it afresh. A real version conflict fails
            // there too.
            Err(SaveError::UserCondition) => self
                .save_once(user, previous, keep_session, events, false)
                .await
                .map_err(SaveError::into_store_error),
            other => other.map_err(SaveError::into_store_error),
        }
    }

    async fn count_users(&self, partition: UserPartition) -> Result<u64, StoreError> {
        self.sum_counters(partition, None).await
    }

    async fn count_by_name(
        &self,
        partition: UserPartition,
        column: UserIndex,
        name: &str,
    ) -> Result<u64, StoreError> {
        let column = match column {
            UserIndex::FirstName => "firstName",
            UserIndex::LastName => "lastName",
            UserIndex::CreatedAt | UserIndex::Email => {
                return Err(StoreError::Backend(format!(
                    "no name counter for {column:?}"
                )));
            }
        };
        self.sum_counters(partition, Some((column, name))).await
    }

    async fn query_index(&self, query: &IndexQuery, limit: usize) -> Result<Vec<User>, StoreError> {
        self.index_items(query, limit, false)
            .await?
            .into_iter()
            .map(user_from_item)
            .collect()
    }

    async fn index_keys(
        &self,
        query: &IndexQuery,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let sk_name = index_attributes(query.index).2;
        Ok(self
            .index_items(query, limit, true)
            .await?
            .into_iter()
            .filter_map(|mut item| match item.remove(sk_name) {
                Some(AttributeValue::S(key)) => Some(key),
                _ => None,
            })
            .collect())
    }

    async fn count_index(&self, query: &IndexQuery) -> Result<u64, StoreError> {
        let request = index_request(self, query).select(Select::Count);
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let output = request
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            self.reads.record_query(&output);
            total += output.count.max(0) as u64;
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }
}

/// Why one attempt of a user save failed.
enum SaveError {
    /// The user item's condition (version, counted) failed.
    UserCondition,
    Store(StoreError),
}

impl SaveError {
    fn into_store_error(self) -> StoreError {
        match self {
            Self::UserCondition => StoreError::VersionConflict,
            Self::Store(error) => error,
        }
    }
}

impl From<StoreError> for SaveError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl DynamoStore {
    /// One attempt of a user save: `counted` says whether the stored item is counted (written
    /// since the counters), and so whether its status's counter is lowered by a move.
    async fn save_once(
        &self,
        user: &User,
        previous: &User,
        keep_session: Option<SessionId>,
        events: &[SecurityEvent],
        counted: bool,
    ) -> Result<(), SaveError> {
        let (condition, values) = user_condition(previous.version, counted);
        let mut items = vec![put(
            &self.table,
            to_item(&UserItem::from_user(user))?,
            condition,
            Some(values.clone()),
        )?];
        let mut email_index = None;
        let email_moved = user.email_key() != previous.email_key();
        let newly_deleted = user.status == Status::Deleted && previous.status != Status::Deleted;
        if (email_moved || newly_deleted) && previous.status != Status::Deleted {
            items.push(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(email_pk(&previous.email_key()), "EMAIL")))
                            .condition_expression("attribute_not_exists(pk) OR userId = :u")
                            .expression_attribute_values(":u", s(user.id.to_string()))
                            .build()
                            .map_err(backend)?,
                    )
                    .build(),
            );
        }
        if email_moved && user.status != Status::Deleted {
            let mut claim = key(email_pk(&user.email_key()), "EMAIL");
            claim.insert("userId".into(), s(user.id.to_string()));
            email_index = Some(items.len());
            items.push(put(&self.table, claim, "attribute_not_exists(pk)", None)?);
        }
        if let Some(session) = keep_session {
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(session_pk(session), "SESSION")))
                            .update_expression("SET epoch = :e ADD version :one")
                            .condition_expression("attribute_exists(pk)")
                            .expression_attribute_values(":e", n(user.session_epoch))
                            .expression_attribute_values(":one", n(1))
                            .build()
                            .map_err(backend)?,
                    )
                    .build(),
            );
        }
        items.extend(events_puts(&self.table, events)?);
        let moves = if counted {
            counter_moves(user, Some(previous))
        } else {
            counter_moves(user, None)
        };
        if items.len() == 1 && moves.is_empty() {
            let Some(TransactWriteItem { put: Some(put), .. }) = items.pop() else {
                unreachable!("the first item is the user put");
            };
            return self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| match classify(e, StoreError::VersionConflict) {
                    StoreError::VersionConflict => SaveError::UserCondition,
                    other => SaveError::Store(other),
                });
        }
        let user_failed = std::sync::atomic::AtomicBool::new(false);
        transact_counted(self, items, &moves)
            .await
            .map_err(|error| {
                SaveError::Store(transaction_error(error, |index| {
                    if index == 0 {
                        user_failed.store(true, std::sync::atomic::Ordering::Relaxed);
                        StoreError::VersionConflict
                    } else if Some(index) == email_index {
                        StoreError::EmailTaken
                    } else {
                        StoreError::VersionConflict
                    }
                }))
            })
            .map_err(|error| {
                if user_failed.load(std::sync::atomic::Ordering::Relaxed) {
                    SaveError::UserCondition
                } else {
                    error
                }
            })
    }
}

/// The puts recording `events`, to join a transaction.
fn events_puts(
    table: &str,
    events: &[SecurityEvent],
) -> Result<Vec<TransactWriteItem>, StoreError> {
    events.iter().map(|event| put_event(table, event)).collect()
}

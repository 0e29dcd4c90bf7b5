//! The DynamoDB adapter: one table, keys as in `docs/data-model.md`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, Select, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Lockout, LockoutStore, SessionStore, StoreError, UserPartition, UserStore};
use crate::clock;
use crate::ids::{SessionId, UserId};
use crate::session::{GraceHash, Session, Stage};
use crate::user::{Role, Status, User};

mod codes;

pub type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStore {
    pub client: Client,
    pub table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Puts an item whose stored `version` is still `expected_version` (`None`: that does not
    /// exist yet); `VersionConflict` otherwise.
    pub async fn put_versioned(
        &self,
        item: Item,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected_version {
            Some(version) => request
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(version)),
            None => request.condition_expression("attribute_not_exists(pk)"),
        };
        request
            .send()
            .await
            .map_err(|e| classify(e, StoreError::VersionConflict))?;
        Ok(())
    }

    /// How many items a query matches, following its pages (`Select COUNT`: nothing is
    /// returned but the count).
    pub async fn count(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let output = query
                .clone()
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            total += output.count as u64;
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }

    /// One cheap request, made at cold start so the first invoke finds the TLS connection open.
    pub async fn warm_up(&self) {
        let _ = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key("WARMUP", "WARMUP")))
            .send()
            .await;
    }
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// Turns an SDK error into a domain error, with `ConditionalCheckFailed` as `conflict`.
pub fn classify<E, R>(error: SdkError<E, R>, conflict: StoreError) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = error
        .as_service_error()
        .and_then(|e| e.code())
        .unwrap_or("");
    if code == "ConditionalCheckFailedException" {
        conflict
    } else {
        StoreError::Backend(format!(
            "{}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&error)
        ))
    }
}

pub fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(backend)
}

pub fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(backend)
}

fn user_pk(id: UserId) -> String {
    format!("USER#{id}")
}

fn email_pk(email_key: &str) -> String {
    format!("EMAIL#{email_key}")
}

fn session_pk(id: SessionId) -> String {
    format!("SESSION#{id}")
}

fn ts(at: OffsetDateTime) -> String {
    clock::format(at)
}

fn parse_ts(text: &str) -> Result<OffsetDateTime, StoreError> {
    clock::parse(text).ok_or_else(|| backend(format!("bad timestamp {text:?}")))
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserItem {
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
}

impl UserItem {
    fn from_user(user: &User) -> Self {
        let live = user.status != Status::Deleted;
        let sort = live.then(|| super::user_sort_key(user));
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
            created_at: ts(user.created_at),
            updated_at: ts(user.updated_at),
            gsi1pk: live.then(|| format!("USERSTATUS#{}", user.status.as_str())),
            gsi1sk: sort.clone(),
            gsi2pk: live.then(|| "USERS".to_owned()),
            gsi2sk: sort,
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
            created_at: parse_ts(&self.created_at)?,
            updated_at: parse_ts(&self.updated_at)?,
        })
    }
}

fn user_from_item(item: Item) -> Result<User, StoreError> {
    from_item::<UserItem>(item)?.into_user()
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraceItem {
    hash: String,
    until: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionItem {
    pk: String,
    sk: String,
    uuid: SessionId,
    user_id: UserId,
    epoch: u64,
    stage: String,
    refresh_hash: Option<String>,
    grace_hashes: Vec<GraceItem>,
    used_hashes: Vec<String>,
    version: u64,
    created_at: String,
    last_used_at: String,
    device_token: Option<String>,
    platform: Option<String>,
    app_version: Option<String>,
    build_number: Option<u64>,
    ttl: i64,
}

impl SessionItem {
    fn from_session(session: &Session) -> Self {
        Self {
            pk: session_pk(session.id),
            sk: "SESSION".into(),
            uuid: session.id,
            user_id: session.user_id,
            epoch: session.epoch,
            stage: match session.stage {
                Stage::Full => "full".into(),
                Stage::TwoFactor => "2fa".into(),
            },
            refresh_hash: session.refresh_hash.clone(),
            grace_hashes: session
                .grace_hashes
                .iter()
                .map(|g| GraceItem {
                    hash: g.hash.clone(),
                    until: ts(g.until),
                })
                .collect(),
            used_hashes: session.used_hashes.clone(),
            version: session.version,
            created_at: ts(session.created_at),
            last_used_at: ts(session.last_used_at),
            device_token: session.device_token.clone(),
            platform: session.platform.clone(),
            app_version: session.app_version.clone(),
            build_number: session.build_number,
            ttl: session.expires_at().unix_timestamp(),
        }
    }

    fn into_session(self) -> Result<Session, StoreError> {
        Ok(Session {
            id: self.uuid,
            user_id: self.user_id,
            epoch: self.epoch,
            stage: if self.stage == "2fa" {
                Stage::TwoFactor
            } else {
                Stage::Full
            },
            refresh_hash: self.refresh_hash,
            grace_hashes: self
                .grace_hashes
                .into_iter()
                .map(|g| {
                    Ok(GraceHash {
                        hash: g.hash,
                        until: parse_ts(&g.until)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            used_hashes: self.used_hashes,
            version: self.version,
            created_at: parse_ts(&self.created_at)?,
            last_used_at: parse_ts(&self.last_used_at)?,
            device_token: self.device_token,
            platform: self.platform,
            app_version: self.app_version,
            build_number: self.build_number,
        })
    }
}

fn session_from_item(item: Item) -> Result<Session, StoreError> {
    from_item::<SessionItem>(item)?.into_session()
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockoutItem {
    pk: String,
    sk: String,
    email_key: String,
    failures: u32,
    window_start: String,
    last_failure_at: String,
    locked_until: Option<String>,
    lock_secs: i64,
    version: u64,
    ttl: i64,
}

fn put(
    table: &str,
    item: Item,
    condition: &str,
    values: Option<Item>,
) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_values(values)
                .build()
                .map_err(backend)?,
        )
        .build())
}

fn transaction_error(
    error: SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
    reasons_to_error: impl Fn(usize) -> StoreError,
) -> StoreError {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
        error.as_service_error()
    {
        let reasons = cancel.cancellation_reasons();
        if let Some(index) = reasons
            .iter()
            .position(|r| r.code() == Some("ConditionalCheckFailed"))
        {
            return reasons_to_error(index);
        }
        // Another transaction touched the same items at the same moment: the caller sees a
        // conflict, which for a registration means someone else got the email first.
        if reasons
            .iter()
            .any(|r| r.code() == Some("TransactionConflict"))
        {
            return reasons_to_error(usize::MAX);
        }
    }
    backend(aws_sdk_dynamodb::error::DisplayErrorContext(&error))
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user_item = to_item(&UserItem::from_user(user))?;
        let mut claim = key(email_pk(&user.email_key()), "EMAIL");
        claim.insert("userId".into(), s(user.id.to_string()));
        self.client
            .transact_write_items()
            .transact_items(put(
                &self.table,
                user_item,
                "attribute_not_exists(pk)",
                None,
            )?)
            .transact_items(put(&self.table, claim, "attribute_not_exists(pk)", None)?)
            .send()
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
            .map_err(|e| classify(e, StoreError::NotFound))?;
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
            .map_err(|e| classify(e, StoreError::NotFound))?;
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

    async fn save_user(
        &self,
        user: &User,
        previous: &User,
        keep_session: Option<SessionId>,
    ) -> Result<(), StoreError> {
        let version_values = HashMap::from([(":v".to_owned(), n(previous.version))]);
        let mut items = vec![put(
            &self.table,
            to_item(&UserItem::from_user(user))?,
            "version = :v",
            Some(version_values),
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
        if items.len() == 1 {
            let Some(TransactWriteItem { put: Some(put), .. }) = items.pop() else {
                unreachable!("the first item is the user put");
            };
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(previous.version))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(e, StoreError::VersionConflict))
        } else {
            self.client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
                .map(|_| ())
                .map_err(|error| {
                    transaction_error(error, |index| {
                        if Some(index) == email_index {
                            StoreError::EmailTaken
                        } else {
                            StoreError::VersionConflict
                        }
                    })
                })
        }
    }

    async fn count_users(&self, partition: UserPartition) -> Result<u64, StoreError> {
        let (index, pk_name, pk) = partition_key(partition);
        self.count(
            self.client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(&pk)),
        )
        .await
    }

    async fn list_users(
        &self,
        partition: UserPartition,
        after: Option<&str>,
        limit: Option<usize>,
        ascending: bool,
    ) -> Result<Vec<User>, StoreError> {
        let (index, pk_name, pk) = partition_key(partition);
        let sk_name = if index == "gsi1" { "gsi1sk" } else { "gsi2sk" };
        let mut users = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(&pk))
                .scan_index_forward(ascending)
                .set_exclusive_start_key(start);
            query = match after {
                Some(after) => query
                    .key_condition_expression(if ascending {
                        "#pk = :pk AND #sk > :after"
                    } else {
                        "#pk = :pk AND #sk < :after"
                    })
                    .expression_attribute_names("#sk", sk_name)
                    .expression_attribute_values(":after", s(after)),
                None => query.key_condition_expression("#pk = :pk"),
            };
            if let Some(limit) = limit {
                query = query.limit((limit - users.len()).clamp(1, 1000) as i32);
            }
            let output = query.send().await.map_err(backend)?;
            for item in output.items.unwrap_or_default() {
                users.push(user_from_item(item)?);
            }
            let done = limit.is_some_and(|limit| users.len() >= limit);
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() && !done => start = Some(key),
                _ => return Ok(users),
            }
        }
    }
}

fn partition_key(partition: UserPartition) -> (&'static str, &'static str, String) {
    match partition {
        UserPartition::Live => ("gsi2", "gsi2pk", "USERS".to_owned()),
        UserPartition::Status(status) => {
            ("gsi1", "gsi1pk", format!("USERSTATUS#{}", status.as_str()))
        }
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&SessionItem::from_session(session))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify(e, StoreError::VersionConflict))?;
        Ok(())
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(session_pk(id), "SESSION")))
            .send()
            .await
            .map_err(backend)?;
        output.item.map(session_from_item).transpose()
    }

    async fn save_session(
        &self,
        session: &Session,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&SessionItem::from_session(session))?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(expected_version))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                use aws_sdk_dynamodb::operation::put_item::PutItemError;
                if let Some(PutItemError::ConditionalCheckFailedException(failed)) =
                    error.as_service_error()
                {
                    return Err(if failed.item().is_some() {
                        StoreError::VersionConflict
                    } else {
                        StoreError::NotFound
                    });
                }
                Err(classify(error, StoreError::VersionConflict))
            }
        }
    }

    async fn delete_session(&self, id: SessionId) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(session_pk(id), "SESSION")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend)?;
        Ok(output.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn get_user_and_session(
        &self,
        user: UserId,
        session: SessionId,
    ) -> Result<(Option<User>, Option<Session>), StoreError> {
        let keys = KeysAndAttributes::builder()
            .keys(key(user_pk(user), "PROFILE"))
            .keys(key(session_pk(session), "SESSION"))
            .consistent_read(true)
            .build()
            .map_err(backend)?;
        let mut request = HashMap::from([(self.table.clone(), keys)]);
        let (mut found_user, mut found_session) = (None, None);
        // BatchGetItem may hand back unprocessed keys under load; ask again for those only.
        for _ in 0..5 {
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(backend)?;
            for item in output
                .responses
                .and_then(|mut r| r.remove(&self.table))
                .unwrap_or_default()
            {
                match item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                {
                    Some("PROFILE") => found_user = Some(user_from_item(item)?),
                    Some("SESSION") => found_session = Some(session_from_item(item)?),
                    _ => {}
                }
            }
            match output.unprocessed_keys {
                Some(unprocessed) if !unprocessed.is_empty() => request = unprocessed,
                _ => return Ok((found_user, found_session)),
            }
        }
        Err(backend("BatchGetItem left keys unprocessed"))
    }
}

#[async_trait]
impl LockoutStore for DynamoStore {
    async fn get_lockout(&self, email_key: &str) -> Result<Option<Lockout>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("LOGIN#{email_key}"), "LOCKOUT")))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let item: LockoutItem = from_item(item)?;
        Ok(Some(Lockout {
            email_key: item.email_key,
            failures: item.failures,
            window_start: parse_ts(&item.window_start)?,
            last_failure_at: parse_ts(&item.last_failure_at)?,
            locked_until: item.locked_until.as_deref().map(parse_ts).transpose()?,
            lock_secs: item.lock_secs,
            version: item.version,
        }))
    }

    async fn put_lockout(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = LockoutItem {
            pk: format!("LOGIN#{}", lockout.email_key),
            sk: "LOCKOUT".into(),
            email_key: lockout.email_key.clone(),
            failures: lockout.failures,
            window_start: ts(lockout.window_start),
            last_failure_at: ts(lockout.last_failure_at),
            locked_until: lockout.locked_until.map(ts),
            lock_secs: lockout.lock_secs,
            version: lockout.version,
            ttl: (lockout.last_failure_at + time::Duration::days(1)).unix_timestamp(),
        };
        self.put_versioned(to_item(&item)?, expected_version).await
    }

    async fn clear_lockout(&self, email_key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("LOGIN#{email_key}"), "LOCKOUT")))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

fn token_pk(kind: super::TokenKind, hash: &str) -> String {
    match kind {
        super::TokenKind::Recovery => format!("RECOVERY#{hash}"),
        super::TokenKind::Verification => format!("VERIFY#{hash}"),
    }
}

fn mail_log_pk(email_key: &str) -> String {
    format!("RECOVERYCAP#{email_key}")
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenItem {
    pk: String,
    sk: String,
    user_id: UserId,
    email: String,
    session_epoch: u64,
    expires_at: String,
    ttl: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailLogItem {
    pk: String,
    sk: String,
    email_key: String,
    sent_at: Vec<String>,
    version: u64,
    ttl: i64,
}

#[async_trait]
impl super::TokenStore for DynamoStore {
    async fn put_token(&self, token: &super::EmailToken) -> Result<(), StoreError> {
        let item = TokenItem {
            pk: token_pk(token.kind, &token.hash),
            sk: "TOKEN".into(),
            user_id: token.user_id,
            email: token.email_key.clone(),
            session_epoch: token.session_epoch,
            expires_at: ts(token.expires_at),
            ttl: token.expires_at.unix_timestamp(),
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify(e, StoreError::VersionConflict))?;
        Ok(())
    }

    async fn get_token(
        &self,
        kind: super::TokenKind,
        hash: &str,
    ) -> Result<Option<super::EmailToken>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(token_pk(kind, hash), "TOKEN")))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let item: TokenItem = from_item(item)?;
        Ok(Some(super::EmailToken {
            kind,
            hash: hash.to_owned(),
            user_id: item.user_id,
            email_key: item.email,
            session_epoch: item.session_epoch,
            expires_at: parse_ts(&item.expires_at)?,
        }))
    }

    async fn redeem_token(
        &self,
        kind: super::TokenKind,
        hash: &str,
        now: OffsetDateTime,
        user: &User,
        previous: &User,
    ) -> Result<(), StoreError> {
        if user.email_key() != previous.email_key() || user.status != previous.status {
            return Err(backend(
                "redeeming a token may not change the email or status",
            ));
        }
        let use_token = TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(token_pk(kind, hash), "TOKEN")))
                    // Fixed-width UTC timestamps compare as text.
                    .condition_expression("attribute_exists(pk) AND expiresAt > :now")
                    .expression_attribute_values(":now", s(ts(now)))
                    .build()
                    .map_err(backend)?,
            )
            .build();
        let save_user = put(
            &self.table,
            to_item(&UserItem::from_user(user))?,
            "version = :v",
            Some(HashMap::from([(":v".to_owned(), n(previous.version))])),
        )?;
        self.client
            .transact_write_items()
            .transact_items(use_token)
            .transact_items(save_user)
            .send()
            .await
            .map_err(|error| {
                transaction_error(error, |index| {
                    if index == 0 {
                        StoreError::NotFound
                    } else {
                        StoreError::VersionConflict
                    }
                })
            })?;
        Ok(())
    }

    async fn get_mail_log(&self, email_key: &str) -> Result<Option<super::MailLog>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(mail_log_pk(email_key), "CAP")))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let item: MailLogItem = from_item(item)?;
        Ok(Some(super::MailLog {
            email_key: item.email_key,
            sent_at: item
                .sent_at
                .iter()
                .map(|at| parse_ts(at))
                .collect::<Result<_, _>>()?,
            version: item.version,
        }))
    }

    async fn put_mail_log(
        &self,
        log: &super::MailLog,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let last = log
            .sent_at
            .iter()
            .max()
            .copied()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let item = MailLogItem {
            pk: mail_log_pk(&log.email_key),
            sk: "CAP".into(),
            email_key: log.email_key.clone(),
            sent_at: log.sent_at.iter().copied().map(ts).collect(),
            version: log.version,
            ttl: (last + time::Duration::hours(1)).unix_timestamp(),
        };
        self.put_versioned(to_item(&item)?, expected_version).await
    }
}

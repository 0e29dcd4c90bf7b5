//! `UserStore` on DynamoDB: `USER#<uuid>` items, `EMAIL#<email>` claims and the listing
//! indexes.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::{
    DynamoStore, Item, backend, classify, email_pk, from_item, key, n, parse_ts, put, put_event, s,
    session_pk, to_item, transaction_error, ts, user_pk,
};
use crate::domain::StoreError;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::{
    AppFactors, Role, Status, User, UserPartition, UserStore, user_sort_key,
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
}

impl UserItem {
    pub(super) fn from_user(user: &User) -> Self {
        let live = user.status != Status::Deleted;
        let sort = live.then(|| user_sort_key(user));
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
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
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
            .map_err(backend)?;
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
        items.extend(events_puts(&self.table, events)?);
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

/// The puts recording `events`, to join a transaction.
fn events_puts(
    table: &str,
    events: &[SecurityEvent],
) -> Result<Vec<TransactWriteItem>, StoreError> {
    events.iter().map(|event| put_event(table, event)).collect()
}

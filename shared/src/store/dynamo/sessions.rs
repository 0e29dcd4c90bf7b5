//! `SessionStore` on DynamoDB: `SESSION#<uuid>` items.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::events::{delete_event, put_event};
use super::lockouts::clear_lockout_item;
use super::users::user_from_item;
use super::{
    DynamoStore, Item, backend, classify, from_item, key, n, parse_ts, put, s, session_pk, to_item,
    transaction_error, ts, user_pk,
};
use crate::domain::StoreError;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::security_event::SecurityEvent;
use crate::domain::session::{GraceHash, Session, SessionStore, Stage};
use crate::domain::user::User;

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
    user_agent: Option<String>,
    /// Keys of the `userSessions` index: a user's sessions, by last use.
    user_sessions_pk: String,
    user_sessions_sk: String,
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
            user_agent: session.user_agent.clone(),
            user_sessions_pk: user_pk(session.user_id),
            user_sessions_sk: format!("{}#{}", ts(session.last_used_at), session.id),
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
            user_agent: self.user_agent,
        })
    }
}

/// The sparse index of session items by user (`userSessionsPk = USER#<uuid>`), newest use
/// last (`userSessionsSk = <lastUsedAt>#<session uuid>`).
const USER_SESSIONS_INDEX: &str = "userSessions";

fn session_from_item(item: Item) -> Result<Session, StoreError> {
    from_item::<SessionItem>(item)?.into_session()
}

impl DynamoStore {
    /// `first`, then the puts of `events`, as one transaction; a failed condition of `first`
    /// is `first_failed`, anything else in the way a `VersionConflict`.
    async fn transact_recording(
        &self,
        first: TransactWriteItem,
        events: &[SecurityEvent],
        first_failed: fn() -> StoreError,
    ) -> Result<(), StoreError> {
        let mut items = vec![first];
        for event in events {
            items.push(put_event(&self.table, event)?);
        }
        self.transact_first(items, first_failed).await
    }

    /// One transaction of `items`: a refusal of the first is `first_failed`, any other a
    /// `VersionConflict` (a concurrent transaction on one of them).
    async fn transact_first(
        &self,
        items: Vec<TransactWriteItem>,
        first_failed: fn() -> StoreError,
    ) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|error| {
                transaction_error(error, |index| match index {
                    0 => first_failed(),
                    _ => StoreError::VersionConflict,
                })
            })?;
        Ok(())
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

    async fn list_user_sessions(&self, user: UserId) -> Result<Vec<Session>, StoreError> {
        let mut sessions = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(USER_SESSIONS_INDEX)
                .key_condition_expression("userSessionsPk = :pk")
                .expression_attribute_values(":pk", s(user_pk(user)))
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            for item in output.items.unwrap_or_default() {
                sessions.push(session_from_item(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(sessions),
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

    async fn create_session_recording(
        &self,
        session: &Session,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        let create = put(
            &self.table,
            to_item(&SessionItem::from_session(session))?,
            "attribute_not_exists(pk)",
            None,
        )?;
        self.transact_recording(create, events, || StoreError::VersionConflict)
            .await
    }

    async fn create_login_session(
        &self,
        session: &Session,
        events: &[SecurityEvent],
        email_key: &str,
        withdrawn: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        let mut items = vec![put(
            &self.table,
            to_item(&SessionItem::from_session(session))?,
            "attribute_not_exists(pk)",
            None,
        )?];
        for event in events {
            items.push(put_event(&self.table, event)?);
        }
        items.push(clear_lockout_item(&self.table, email_key)?);
        for event in withdrawn {
            items.push(delete_event(&self.table, event)?);
        }
        self.transact_first(items, || StoreError::VersionConflict)
            .await
    }

    async fn save_session_recording(
        &self,
        session: &Session,
        expected_version: u64,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        // A transaction tells no missing item from a stale one: the read after a refusal
        // does (a conflict is retried by the caller, a missing session is not).
        let save = put(
            &self.table,
            to_item(&SessionItem::from_session(session))?,
            "version = :v",
            Some(HashMap::from([(":v".to_owned(), n(expected_version))])),
        )?;
        match self
            .transact_recording(save, events, || StoreError::VersionConflict)
            .await
        {
            Err(StoreError::VersionConflict) if self.get_session(session.id).await?.is_none() => {
                Err(StoreError::NotFound)
            }
            other => other,
        }
    }

    async fn delete_session_recording(
        &self,
        id: SessionId,
        events: &[SecurityEvent],
    ) -> Result<bool, StoreError> {
        let delete = TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(session_pk(id), "SESSION")))
                    .condition_expression("attribute_exists(pk)")
                    .build()
                    .map_err(backend)?,
            )
            .build();
        match self
            .transact_recording(delete, events, || StoreError::NotFound)
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn get_user_and_session(
        &self,
        user: UserId,
        session: SessionId,
    ) -> Result<(Option<User>, Option<Session>), StoreError> {
        let items = self
            .batch_get_consistent(vec![
                key(user_pk(user), "PROFILE"),
                key(session_pk(session), "SESSION"),
            ])
            .await?;
        let (mut found_user, mut found_session) = (None, None);
        for item in items {
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
        Ok((found_user, found_session))
    }
}

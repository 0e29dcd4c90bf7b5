//! `LockoutStore` on DynamoDB: `LOGIN#<email>`/`LOCKOUT` items.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::events::{delete_event, put_decoy_event, put_event};
use super::{
    DynamoStore, Item, backend, email_pk, from_item, key, n, parse_ts, put, to_item,
    transaction_error, ts,
};
use crate::domain::StoreError;
use crate::domain::ids::UserId;
use crate::domain::lockout::{Lockout, LockoutStore};
use crate::domain::security_event::SecurityEvent;

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

#[async_trait]
impl LockoutStore for DynamoStore {
    async fn get_lockout(&self, email_key: &str) -> Result<Option<Lockout>, StoreError> {
        self.get_consistent::<LockoutItem>(lockout_pk(email_key), "LOCKOUT")
            .await?
            .map(LockoutItem::lockout)
            .transpose()
    }

    async fn find_claim_and_lockout(
        &self,
        claim_key: &str,
        email_key: &str,
    ) -> Result<(Option<UserId>, Option<Lockout>), StoreError> {
        let items = self
            .batch_get_consistent(vec![
                key(email_pk(claim_key), "EMAIL"),
                key(lockout_pk(email_key), "LOCKOUT"),
            ])
            .await?;
        let (mut claimed, mut lockout) = (None, None);
        for item in items {
            match item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
            {
                Some("EMAIL") => {
                    claimed = item
                        .get("userId")
                        .and_then(|value| value.as_s().ok())
                        .and_then(|text| UserId::parse(text));
                }
                Some("LOCKOUT") => lockout = Some(from_item::<LockoutItem>(item)?.lockout()?),
                _ => {}
            }
        }
        Ok((claimed, lockout))
    }

    async fn put_lockout(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.put_versioned(lockout_item(lockout)?, expected_version)
            .await
    }

    async fn clear_lockout(&self, email_key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(lockout_pk(email_key), "LOCKOUT")))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn put_lockout_recording(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
        events: &[SecurityEvent],
        decoys: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        let (condition, values) = match expected_version {
            Some(version) => (
                "version = :v",
                Some(HashMap::from([(":v".to_owned(), n(version))])),
            ),
            None => ("attribute_not_exists(pk)", None),
        };
        let mut items = vec![put(&self.table, lockout_item(lockout)?, condition, values)?];
        for event in events {
            items.push(put_event(&self.table, event)?);
        }
        for decoy in decoys {
            items.push(put_decoy_event(&self.table, decoy)?);
        }
        self.transact(items).await
    }

    async fn clear_lockout_withdrawing(
        &self,
        email_key: &str,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return self.clear_lockout(email_key).await;
        }
        let mut items = vec![clear_lockout_item(&self.table, email_key)?];
        for event in events {
            items.push(delete_event(&self.table, event)?);
        }
        self.transact(items).await
    }
}

impl DynamoStore {
    /// One transaction of `items`; a failed condition or a concurrent transaction on one of
    /// them is a `VersionConflict`.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|error| transaction_error(error, |_| StoreError::VersionConflict))?;
        Ok(())
    }
}

impl LockoutItem {
    fn lockout(self) -> Result<Lockout, StoreError> {
        Ok(Lockout {
            email_key: self.email_key,
            failures: self.failures,
            window_start: parse_ts(&self.window_start)?,
            last_failure_at: parse_ts(&self.last_failure_at)?,
            locked_until: self.locked_until.as_deref().map(parse_ts).transpose()?,
            lock_secs: self.lock_secs,
            version: self.version,
        })
    }
}

/// The unconditional delete of the email's lockout, as a transaction item.
pub(super) fn clear_lockout_item(
    table: &str,
    email_key: &str,
) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(key(lockout_pk(email_key), "LOCKOUT")))
                .build()
                .map_err(backend)?,
        )
        .build())
}

fn lockout_pk(email_key: &str) -> String {
    format!("LOGIN#{email_key}")
}

fn lockout_item(lockout: &Lockout) -> Result<Item, StoreError> {
    to_item(&LockoutItem {
        pk: lockout_pk(&lockout.email_key),
        sk: "LOCKOUT".into(),
        email_key: lockout.email_key.clone(),
        failures: lockout.failures,
        window_start: ts(lockout.window_start),
        last_failure_at: ts(lockout.last_failure_at),
        locked_until: lockout.locked_until.map(ts),
        lock_secs: lockout.lock_secs,
        version: lockout.version,
        ttl: (lockout.last_failure_at + time::Duration::days(1)).unix_timestamp(),
    })
}

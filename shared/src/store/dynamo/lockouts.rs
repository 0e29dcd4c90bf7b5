//! `LockoutStore` on DynamoDB: `LOGIN#<email>`/`LOCKOUT` items.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::events::{delete_event, put_event};
use super::{DynamoStore, Item, backend, key, n, parse_ts, put, to_item, transaction_error, ts};
use crate::domain::StoreError;
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
        let Some(item) = self
            .get_consistent::<LockoutItem>(lockout_pk(email_key), "LOCKOUT")
            .await?
        else {
            return Ok(None);
        };
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
        let clear = TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(lockout_pk(email_key), "LOCKOUT")))
                    .build()
                    .map_err(backend)?,
            )
            .build();
        let mut items = vec![clear];
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

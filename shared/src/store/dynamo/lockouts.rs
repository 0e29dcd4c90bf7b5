//! `LockoutStore` on DynamoDB: `LOGIN#<email>`/`LOCKOUT` items.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{DynamoStore, backend, key, parse_ts, to_item, ts};
use crate::domain::StoreError;
use crate::domain::lockout::{Lockout, LockoutStore};

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
            .get_consistent::<LockoutItem>(format!("LOGIN#{email_key}"), "LOCKOUT")
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

//! `ReportStore` on DynamoDB: a report sits in its
//! user's partition (`USER#<uuid>`, `REPORT#<createdAt>#<uuid>`), so listing is one `Query`.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    DynamoStore, Item, backend, from_item, key, n, parse_ts, put, s, to_item, transaction_error,
    ts, user_pk,
};
use crate::domain::StoreError;
use crate::domain::clock;
use crate::domain::ids::{ReportId, UserId};
use crate::domain::report::{QUOTA_WINDOW, Report, ReportQuota, ReportStart, ReportStore};

const SK_PREFIX: &str = "REPORT#";
/// Not under [`SK_PREFIX`], so listing never sees it.
const QUOTA_SK: &str = "REPORTQUOTA";

/// `USER#<uuid>`/`REPORTQUOTA`: when the user's reports of the last 24 hours were created.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuotaItem {
    pk: String,
    sk: String,
    user_id: UserId,
    created_at: Vec<String>,
    version: u64,
    ttl: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportItem {
    pk: String,
    sk: String,
    uuid: ReportId,
    #[serde(rename = "userUUID")]
    user_uuid: UserId,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl ReportItem {
    fn into_report(self) -> Result<Report, StoreError> {
        Ok(Report {
            id: self.uuid,
            user_id: self.user_uuid,
            created_at: clock::parse(&self.created_at)
                .ok_or_else(|| backend(format!("bad timestamp {:?}", self.created_at)))?,
            file_name: self.file_name,
            content_type: self.content_type,
            description: self.description,
        })
    }
}

impl DynamoStore {
    /// A `Query` over the user's reports.
    fn report_query(
        &self,
        user: UserId,
        ascending: bool,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":prefix", s(SK_PREFIX))
            .scan_index_forward(ascending)
    }

    /// The key to continue after `count` reports (`None`: there are no more), reading keys only.
    async fn skip_reports(
        &self,
        user: UserId,
        mut count: u64,
        ascending: bool,
    ) -> Result<Option<Item>, StoreError> {
        let mut start = None;
        while count > 0 {
            let output = self
                .report_query(user, ascending)
                .projection_expression("#pk, #sk")
                .limit(count.min(1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            count = count.saturating_sub(output.count as u64);
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(None),
            }
        }
        Ok(start)
    }
}

#[async_trait]
impl ReportStore for DynamoStore {
    async fn get_report_quota(&self, user: UserId) -> Result<Option<ReportQuota>, StoreError> {
        let Some(item) = self
            .get_consistent::<QuotaItem>(user_pk(user), QUOTA_SK)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(ReportQuota {
            user_id: item.user_id,
            created_at: item
                .created_at
                .iter()
                .map(|at| parse_ts(at))
                .collect::<Result<_, _>>()?,
            version: item.version,
        }))
    }

    async fn create_report(
        &self,
        report: &Report,
        quota: &ReportQuota,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = ReportItem {
            pk: user_pk(report.user_id),
            sk: format!("{SK_PREFIX}{}", report.sort_key()),
            uuid: report.id,
            user_uuid: report.user_id,
            created_at: clock::format(report.created_at),
            file_name: report.file_name.clone(),
            content_type: report.content_type.clone(),
            description: report.description.clone(),
        };
        let last = quota.created_at.iter().max().copied();
        let quota_item = QuotaItem {
            pk: user_pk(quota.user_id),
            sk: QUOTA_SK.into(),
            user_id: quota.user_id,
            created_at: quota.created_at.iter().copied().map(ts).collect(),
            version: quota.version,
            // The quota looks back 24 hours; after that the log says nothing.
            ttl: last.map_or(0, |at| (at + QUOTA_WINDOW).unix_timestamp()),
        };
        let (condition, values) = match expected_version {
            Some(version) => (
                "version = :v",
                Some(HashMap::from([(":v".to_owned(), n(version))])),
            ),
            None => ("attribute_not_exists(pk)", None),
        };
        self.client
            .transact_write_items()
            .transact_items(put(&self.table, to_item(&quota_item)?, condition, values)?)
            .transact_items(put(
                &self.table,
                to_item(&item)?,
                "attribute_not_exists(pk)",
                None,
            )?)
            .send()
            .await
            .map_err(|error| transaction_error(error, |_| StoreError::VersionConflict))?;
        Ok(())
    }

    async fn count_reports(&self, user: UserId) -> Result<u64, StoreError> {
        self.count(self.report_query(user, true)).await
    }

    async fn list_reports(
        &self,
        user: UserId,
        start: ReportStart,
        limit: usize,
        ascending: bool,
    ) -> Result<Vec<Report>, StoreError> {
        let mut start = match start {
            ReportStart::After(sort_key) => {
                Some(key(user_pk(user), format!("{SK_PREFIX}{sort_key}")))
            }
            ReportStart::Skip(0) => None,
            ReportStart::Skip(count) => match self.skip_reports(user, count, ascending).await? {
                Some(key) => Some(key),
                None => return Ok(Vec::new()),
            },
        };
        let mut reports = Vec::new();
        while reports.len() < limit {
            let output = self
                .report_query(user, ascending)
                .limit((limit - reports.len()).min(1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            for item in output.items.unwrap_or_default() {
                reports.push(from_item::<ReportItem>(item)?.into_report()?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(reports)
    }
}

//! `ReportStore` on DynamoDB: a report sits in its
//! user's partition (`USER#<uuid>`, `REPORT#<createdAt>#<uuid>`), so listing is one `Query`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{DynamoStore, Item, backend, classify, from_item, key, s, to_item, user_pk};
use crate::domain::StoreError;
use crate::domain::clock;
use crate::domain::ids::{ReportId, UserId};
use crate::domain::report::{Report, ReportStart, ReportStore};

const SK_PREFIX: &str = "REPORT#";

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
    async fn create_report(&self, report: &Report) -> Result<(), StoreError> {
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

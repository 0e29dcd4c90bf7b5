//! `ReportStore` in memory, with the same contract as the DynamoDB adapter, and the unit
//! tests' `ReportStorage`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::MemoryStore;
use crate::domain::StoreError;
use crate::domain::ids::UserId;
use crate::domain::report::{Report, ReportQuota, ReportStart, ReportStorage, ReportStore};

#[async_trait]
impl ReportStore for MemoryStore {
    async fn get_report_quota(&self, user: UserId) -> Result<Option<ReportQuota>, StoreError> {
        Ok(self.reports.lock().unwrap().quotas.get(&user).cloned())
    }

    async fn create_report(
        &self,
        report: &Report,
        quota: &ReportQuota,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut reports = self.reports.lock().unwrap();
        if reports.quotas.get(&quota.user_id).map(|q| q.version) != expected_version {
            return Err(StoreError::VersionConflict);
        }
        let by_key = reports.by_user.entry(report.user_id).or_default();
        if by_key.contains_key(&report.sort_key()) {
            return Err(StoreError::VersionConflict);
        }
        by_key.insert(report.sort_key(), report.clone());
        reports.quotas.insert(quota.user_id, quota.clone());
        Ok(())
    }

    async fn count_reports(&self, user: UserId) -> Result<u64, StoreError> {
        let reports = self.reports.lock().unwrap();
        Ok(reports.by_user.get(&user).map_or(0, |r| r.len() as u64))
    }

    async fn list_reports(
        &self,
        user: UserId,
        start: ReportStart,
        limit: usize,
        ascending: bool,
    ) -> Result<Vec<Report>, StoreError> {
        let reports = self.reports.lock().unwrap();
        let empty = Default::default();
        let by_key = reports.by_user.get(&user).unwrap_or(&empty);
        let ordered: Box<dyn Iterator<Item = (&String, &Report)>> = if ascending {
            Box::new(by_key.iter())
        } else {
            Box::new(by_key.iter().rev())
        };
        let skip = match start {
            ReportStart::Skip(count) => usize::try_from(count).unwrap_or(usize::MAX),
            ReportStart::After(_) => 0,
        };
        Ok(ordered
            .filter(|(sort_key, _)| match &start {
                ReportStart::After(after) if ascending => *sort_key > after,
                ReportStart::After(after) => *sort_key < after,
                ReportStart::Skip(_) => true,
            })
            .skip(skip)
            .take(limit)
            .map(|(_, report)| report.clone())
            .collect())
    }
}

/// Reports of each user by sort key, for [`MemoryStore`].
/// Each user's reports by sort key, and each user's quota log.
#[derive(Default)]
pub struct MemoryReports {
    by_user: HashMap<UserId, BTreeMap<String, Report>>,
    quotas: HashMap<UserId, ReportQuota>,
}

/// Unit tests' stand-in: URLs on a reserved domain that name the object, method and expiry.
#[derive(Clone, Default)]
pub struct MemoryReportStorage;

impl MemoryReportStorage {
    fn url(method: &str, key: &str, starts_at: OffsetDateTime, lifetime: Duration) -> String {
        format!(
            "https://reports.invalid/{key}?method={method}&expires={}",
            (starts_at + lifetime).unix_timestamp()
        )
    }
}

#[async_trait]
impl ReportStorage for MemoryReportStorage {
    async fn presign_upload(
        &self,
        key: &str,
        _content_type: Option<&str>,
        _content_length: Option<u64>,
        starts_at: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, StoreError> {
        Ok(Self::url("PUT", key, starts_at, lifetime))
    }

    async fn presign_download(
        &self,
        key: &str,
        _file_name: Option<&str>,
        starts_at: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, StoreError> {
        Ok(Self::url("GET", key, starts_at, lifetime))
    }
}

//! `ReportStore` in memory, with the same contract as the DynamoDB adapter.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::MemoryStore;
use crate::ids::UserId;
use crate::reports::Report;
use crate::store::StoreError;
use crate::store::reports::{ReportStart, ReportStore};

#[async_trait]
impl ReportStore for MemoryStore {
    async fn create_report(&self, report: &Report) -> Result<(), StoreError> {
        let mut reports = self.reports.lock().unwrap();
        let by_key = reports.entry(report.user_id).or_default();
        if by_key.contains_key(&report.sort_key()) {
            return Err(StoreError::VersionConflict);
        }
        by_key.insert(report.sort_key(), report.clone());
        Ok(())
    }

    async fn count_reports(&self, user: UserId) -> Result<u64, StoreError> {
        let reports = self.reports.lock().unwrap();
        Ok(reports.get(&user).map_or(0, |r| r.len() as u64))
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
        let by_key = reports.get(&user).unwrap_or(&empty);
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
pub type MemoryReports = HashMap<UserId, BTreeMap<String, Report>>;

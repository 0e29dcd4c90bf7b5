//! The contract of `ReportStore`, run against the in-memory adapter (unit tests) and the
//! DynamoDB adapter (integration tests on DynamoDB Local), so both behave the same.

use time::Duration;

use crate::domain::StoreError;
use crate::domain::clock::Clock;
use crate::domain::ids::{ReportId, UserId};
use crate::domain::report::Report;
use crate::domain::report::{ReportQuota, ReportStart, ReportStore};

/// Stores `report`, counting it in its user's quota log as the service does.
async fn create<S: ReportStore + ?Sized>(store: &S, report: &Report) {
    let current = store.get_report_quota(report.user_id).await.unwrap();
    let expected = current.as_ref().map(|quota| quota.version);
    let mut quota = current.unwrap_or(ReportQuota {
        user_id: report.user_id,
        created_at: Vec::new(),
        version: 0,
    });
    quota.created_at.push(report.created_at);
    quota.version += 1;
    store.create_report(report, &quota, expected).await.unwrap();
}

/// Five reports of one user a minute apart, oldest first, the middle one without optional
/// fields.
fn reports(user: UserId) -> Vec<Report> {
    let start = Clock::system().now() - Duration::hours(1);
    (0..5)
        .map(|i| Report {
            id: ReportId::new(),
            user_id: user,
            created_at: start + Duration::minutes(i),
            file_name: (i != 2).then(|| format!("log-{i}.zip")),
            content_type: (i != 2).then(|| "application/zip".to_owned()),
            description: (i != 2).then(|| format!("report {i}")),
        })
        .collect()
}

/// Runs every check on a store that starts empty.
pub async fn run_all<S: ReportStore + ?Sized>(store: &S) {
    let owner = UserId::new();
    let neighbour = UserId::new();
    let all = reports(owner);
    // Stored out of order: listing must sort by creation time, not by insertion.
    for report in all.iter().rev() {
        create(store, report).await;
    }
    create(store, &reports(neighbour)[0]).await;
    let quota = store.get_report_quota(owner).await.unwrap().unwrap();
    assert_eq!((quota.created_at.len(), quota.version), (5, 5));

    assert_eq!(store.count_reports(owner).await.unwrap(), 5);
    assert_eq!(store.count_reports(neighbour).await.unwrap(), 1);
    assert_eq!(store.count_reports(UserId::new()).await.unwrap(), 0);

    let oldest_first = store
        .list_reports(owner, ReportStart::Skip(0), 10, true)
        .await
        .unwrap();
    assert_eq!(oldest_first, all, "reports round-trip, oldest first");
    let newest_first = store
        .list_reports(owner, ReportStart::Skip(0), 10, false)
        .await
        .unwrap();
    let reversed: Vec<Report> = all.iter().rev().cloned().collect();
    assert_eq!(newest_first, reversed);

    let skipped = store
        .list_reports(owner, ReportStart::Skip(3), 10, false)
        .await
        .unwrap();
    assert_eq!(skipped, reversed[3..]);
    let past_the_end = store
        .list_reports(owner, ReportStart::Skip(5), 10, true)
        .await
        .unwrap();
    assert!(past_the_end.is_empty());

    let after = |i: usize| ReportStart::After(all[i].sort_key());
    let limited = store.list_reports(owner, after(1), 2, true).await.unwrap();
    assert_eq!(limited, all[2..4]);
    let backwards = store
        .list_reports(owner, after(1), 10, false)
        .await
        .unwrap();
    assert_eq!(backwards, all[..1]);
    let after_last = store.list_reports(owner, after(4), 10, true).await.unwrap();
    assert!(after_last.is_empty());

    a_stale_quota_writes_nothing(store).await;
}

async fn a_stale_quota_writes_nothing<S: ReportStore + ?Sized>(store: &S) {
    let user = UserId::new();
    let [first, second, ..] = &reports(user)[..] else {
        unreachable!("five reports")
    };
    create(store, first).await;
    let stale = ReportQuota {
        user_id: user,
        created_at: vec![first.created_at, second.created_at],
        version: 1,
    };
    assert!(matches!(
        store.create_report(second, &stale, None).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.count_reports(user).await.unwrap(), 1);
    let stored = store.get_report_quota(user).await.unwrap().unwrap();
    assert_eq!(stored.created_at, [first.created_at]);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_adapter_keeps_the_report_contract() {
        let store = crate::store::memory::MemoryStore::new();
        super::run_all(&store).await;
    }
}

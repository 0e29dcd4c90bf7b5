//! Diagnostic reports: a record per report, a presigned PUT for the client to upload the file
//! straight to S3, and presigned GETs in the owner's (or a csrAdmin's) listing.
//!
//! Listing is paged like `GET /users`: `page` or an opaque `cursor`, `limit` 1–100 and
//! `order=createdAt:desc|asc`.

use std::collections::BTreeMap;

use serde_json::json;
use time::OffsetDateTime;

use crate::ApiError;
use crate::app::Core;
use crate::domain::ids::{ReportId, UserId};
use crate::domain::report::{
    CreatedReport, Description, FileName, ListedReport, NewReport, QUOTA_WINDOW,
    REPORTS_PER_WINDOW, Report, ReportQuota, ReportStart, ReportStorage, URL_LIFETIME, Upload,
};
use crate::domain::user::User;
use crate::domain::{ListStart, StoreError};
use crate::error::FieldErrors;
use crate::service::paging;
use crate::service::paging::{Page, Start};
use crate::service::users;

/// Records a report for `user` and presigns the upload of its file (its `Content-Type` and,
/// when given, its size signed in). At most 20 reports per user per 24 hours: past that, 429
/// "Too many diagnostic reports." with `Retry-After`, and nothing is written.
pub async fn create(
    core: &Core,
    storage: &dyn ReportStorage,
    user: UserId,
    new: NewReport,
) -> Result<CreatedReport, ApiError> {
    let now = core.clock.now();
    let report = Report {
        id: ReportId::new(),
        user_id: user,
        created_at: now,
        file_name: new.file_name.map(FileName::into_string),
        content_type: new.content_type.map(|c| c.as_str().to_owned()),
        description: new.description.map(Description::into_string),
    };
    // Signed before the record is written, so a failure leaves nothing behind.
    let url = storage
        .presign_upload(
            &report.object_key(),
            report.content_type.as_deref(),
            new.size,
            now,
            URL_LIFETIME,
        )
        .await?;
    record_within_quota(core, &report, now).await?;
    let mut headers = std::collections::BTreeMap::new();
    if let Some(content_type) = &report.content_type {
        headers.insert("Content-Type".to_owned(), content_type.clone());
    }
    if let Some(size) = new.size {
        headers.insert("Content-Length".to_owned(), size.to_string());
    }
    Ok(CreatedReport {
        report,
        upload: Upload {
            url,
            headers,
            expires_at: now + URL_LIFETIME,
        },
    })
}

/// Writes the report with the user's quota log counting it (optimistically, retried on a
/// concurrent create), unless 20 reports were created in the last 24 hours.
async fn record_within_quota(
    core: &Core,
    report: &Report,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    for _ in 0..10 {
        let current = core.reports.get_report_quota(report.user_id).await?;
        let expected = current.as_ref().map(|quota| quota.version);
        let mut quota = current.unwrap_or(ReportQuota {
            user_id: report.user_id,
            created_at: Vec::new(),
            version: 0,
        });
        quota.created_at.retain(|at| now - *at < QUOTA_WINDOW);
        quota.created_at.sort();
        if quota.created_at.len() >= REPORTS_PER_WINDOW {
            let oldest_counted = quota.created_at[quota.created_at.len() - REPORTS_PER_WINDOW];
            let wait = oldest_counted + QUOTA_WINDOW - now;
            let retry_after_secs =
                u64::try_from((wait.whole_milliseconds().max(1) + 999) / 1000).unwrap_or(u64::MAX);
            return Err(ApiError::TooManyReports { retry_after_secs });
        }
        quota.created_at.push(now);
        quota.version += 1;
        match core.reports.create_report(report, &quota, expected).await {
            Err(StoreError::VersionConflict) => continue,
            other => return Ok(other?),
        }
    }
    Err(ApiError::internal("report quota update kept conflicting"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// A parsed `GET /users/{userUUID}/diagnostic-reports` query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    order: Order,
    limit: usize,
    start: Start,
}

impl ListQuery {
    /// Reads `page`, `cursor`, `limit` and `order` like `GET /users` does: a bad `page` or
    /// `cursor` (or both at once) is "Page is invalid."; a bad `limit` or `order` is a field
    /// error naming it, as is any `filter[…]` (reports have none).
    pub fn parse(params: &BTreeMap<String, String>) -> Result<Self, ApiError> {
        let page = paging::parse_page(params.get("page").map(String::as_str))?;
        let mut fields = FieldErrors::new();
        let limit = match paging::parse_limit(params.get("limit").map(String::as_str)) {
            Ok(limit) => limit,
            Err(ApiError::Validation(errors)) => {
                fields.extend(errors);
                paging::DEFAULT_LIMIT
            }
            Err(other) => return Err(other),
        };
        let order = match params.get("order").map(|o| o.split_once(':')) {
            None => Order::Desc,
            Some(Some(("createdAt", "asc"))) => Order::Asc,
            Some(Some(("createdAt", "desc"))) => Order::Desc,
            Some(_) => {
                fields.insert(
                    "order".into(),
                    vec!["Must be createdAt:desc or createdAt:asc.".into()],
                );
                Order::Desc
            }
        };
        for name in params.keys().filter(|name| name.starts_with("filter[")) {
            fields.insert(name.clone(), vec!["Unknown filter.".into()]);
        }
        if !fields.is_empty() {
            return Err(ApiError::Validation(fields));
        }
        let start = match (params.contains_key("page"), params.get("cursor")) {
            (true, Some(_)) => return Err(ApiError::PageInvalid),
            (_, Some(cursor)) => Start::Cursor(cursor.clone()),
            (_, None) => Start::Page(page),
        };
        Ok(Self {
            order,
            limit,
            start,
        })
    }

    /// Everything a cursor is bound to.
    fn scope(&self, owner: UserId) -> String {
        json!([
            "diagnostic-reports",
            owner,
            self.order == Order::Asc,
            self.limit
        ])
        .to_string()
    }
}

/// Lists `owner`'s reports for `caller`: the owner or a csrAdmin (403 "No Access." otherwise);
/// 404 "This user does not exist." once the owner is deleted. Each item carries a presigned
/// download URL. Returns `(items, meta)`.
pub async fn list(
    core: &Core,
    storage: &dyn ReportStorage,
    caller: &User,
    owner: UserId,
    query: &ListQuery,
) -> Result<Page<ListedReport>, ApiError> {
    if caller.id != owner && !caller.is_admin() {
        return Err(ApiError::NoAccess);
    }
    // The caller's own account was just loaded by authentication and is live.
    if caller.id != owner && users::find_live(core, owner).await?.is_none() {
        return Err(ApiError::UserNotFound);
    }
    let total = core.reports.count_reports(owner).await?;
    let ascending = query.order == Order::Asc;
    let page = paging::keyed_page(
        &core.hmac_key,
        &query.scope(owner),
        &query.start,
        query.limit,
        total,
        Report::sort_key,
        |start, limit| {
            let start = match start {
                ListStart::Skip(count) => ReportStart::Skip(count),
                ListStart::After(sort_key) => ReportStart::After(sort_key),
            };
            core.reports.list_reports(owner, start, limit, ascending)
        },
    )
    .await?;
    let now = core.clock.now();
    let mut items = Vec::with_capacity(page.items.len());
    for report in page.items {
        let download_url = storage
            .presign_download(
                &report.object_key(),
                report.file_name.as_deref(),
                now,
                URL_LIFETIME,
            )
            .await?;
        items.push(ListedReport {
            report,
            download_url,
        });
    }
    Ok(Page {
        items,
        page: page.page,
        limit: page.limit,
        total: page.total,
        next_cursor: page.next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::App;
    use crate::domain::email::Email;
    use crate::http::views;
    use crate::security::password::Password;
    use crate::service::users::NewUser;
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use time::Duration;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn field_names(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation(fields) => fields.into_keys().collect(),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    async fn user(app: &App, email: &str) -> User {
        users::register(
            app,
            NewUser {
                email: Email::parse(email).unwrap(),
                password: Password::parse("correct horse").unwrap(),
                first_name: None,
                last_name: None,
                full_name: None,
                marketing_opt_in: false,
            },
        )
        .await
        .unwrap()
    }

    /// Creates `count` reports a second apart; returns their uuids oldest first.
    async fn reports(app: &App, owner: &User, count: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..count {
            let new = NewReport::parse(
                Some(&format!("log-{i}.txt")),
                Some("text/plain"),
                None,
                None,
            )
            .unwrap();
            let created = create_json(app, owner.id, new).await.unwrap();
            ids.push(created["uuid"].as_str().unwrap().to_owned());
            app.clock.advance(Duration::seconds(1));
        }
        ids
    }

    async fn create_json(app: &App, user: UserId, new: NewReport) -> Result<Value, ApiError> {
        let created = create(app, &*app.report_storage, user, new).await?;
        Ok(views::created_report(&created))
    }

    async fn list_json(
        app: &App,
        caller: &User,
        owner: UserId,
        query: &ListQuery,
    ) -> Result<(Vec<Value>, Value), ApiError> {
        let page = list(app, &*app.report_storage, caller, owner, query).await?;
        let items = page.items.iter().map(views::listed_report).collect();
        Ok((items, views::meta(&page)))
    }

    fn uuids(items: &[Value]) -> Vec<String> {
        items
            .iter()
            .map(|item| item["uuid"].as_str().unwrap().to_owned())
            .collect()
    }

    proptest! {
        #[test]
        fn file_names_without_forbidden_characters_are_kept_verbatim(
            name in "[^/\\\\\\p{Cc}]{1,255}"
        ) {
            prop_assume!(name != "." && name != "..");
            let parsed = FileName::parse(&name);
            prop_assert_eq!(parsed.as_ref().map(FileName::as_str), Ok(name.as_str()));
        }

        #[test]
        fn file_names_with_a_forbidden_character_are_refused(
            before in ".{0,100}",
            bad in prop::sample::select(vec!['/', '\\', '\u{0}', '\n', '\r', '\t', '\u{1b}', '\u{7f}', '\u{85}']),
            after in ".{0,100}",
        ) {
            let name = format!("{before}{bad}{after}");
            prop_assert!(FileName::parse(&name).is_err());
        }
    }

    #[test]
    fn list_query_defaults_to_newest_first_twenty_per_page() {
        let query = ListQuery::parse(&params(&[])).unwrap();
        assert_eq!(
            query,
            ListQuery {
                order: Order::Desc,
                limit: 20,
                start: Start::Page(1)
            }
        );
    }

    #[test]
    fn bad_pages_or_a_page_with_a_cursor_are_page_invalid() {
        for pairs in [
            vec![("page", "0")],
            vec![("page", "-1")],
            vec![("page", "two")],
            vec![("page", "")],
            vec![("page", "99999999999999999999999")],
            vec![("page", "1"), ("cursor", "abc")],
        ] {
            let error = ListQuery::parse(&params(&pairs)).unwrap_err();
            assert!(
                matches!(error, ApiError::PageInvalid),
                "{pairs:?}: {error:?}"
            );
        }
    }

    #[test]
    fn bad_limits_orders_and_filters_are_field_errors_naming_them() {
        for (pairs, field) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "101")], "limit"),
            (vec![("limit", "ten")], "limit"),
            (vec![("order", "email:asc")], "order"),
            (vec![("order", "createdAt")], "order"),
            (vec![("order", "createdAt:sideways")], "order"),
            (vec![("order", "createdAt:DESC")], "order"),
            (vec![("filter[email]", "a@b.c")], "filter[email]"),
        ] {
            let error = ListQuery::parse(&params(&pairs)).unwrap_err();
            assert_eq!(field_names(error), [field], "{pairs:?}");
        }
    }

    #[tokio::test]
    async fn pages_walk_the_reports_in_either_order() {
        let app = App::in_memory();
        let owner = user(&app, "pages@example.com").await;
        let ids = reports(&app, &owner, 5).await;
        let list_page = |pairs: Vec<(&'static str, &'static str)>| {
            let app = app.clone();
            let owner = owner.clone();
            async move {
                let query = ListQuery::parse(&params(&pairs)).unwrap();
                list_json(&app, &owner, owner.id, &query).await.unwrap()
            }
        };

        let (first, meta) = list_page(vec![("limit", "2")]).await;
        assert_eq!(uuids(&first), [ids[4].clone(), ids[3].clone()]);
        assert_eq!(
            (meta["page"].as_u64(), meta["total"].as_u64()),
            (Some(1), Some(5))
        );
        assert!(meta["nextCursor"].is_string());

        let (third, meta) = list_page(vec![("limit", "2"), ("page", "3")]).await;
        assert_eq!(uuids(&third), [ids[0].clone()]);
        assert!(meta["nextCursor"].is_null());

        let (oldest, _) = list_page(vec![("order", "createdAt:asc"), ("limit", "3")]).await;
        assert_eq!(uuids(&oldest), ids[..3]);

        let (beyond, meta) = list_page(vec![("page", "9")]).await;
        assert!(beyond.is_empty());
        assert_eq!(meta["page"], 9);
    }

    #[tokio::test]
    async fn following_next_cursors_visits_every_report_once() {
        let app = App::in_memory();
        let owner = user(&app, "cursor@example.com").await;
        let ids = reports(&app, &owner, 5).await;
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        let mut pairs = params(&[("limit", "2"), ("order", "createdAt:asc")]);
        loop {
            let query = ListQuery::parse(&pairs).unwrap();
            let (items, meta) = list_json(&app, &owner, owner.id, &query).await.unwrap();
            seen.extend(uuids(&items));
            pages.push(meta["page"].as_u64().unwrap());
            match meta["nextCursor"].as_str() {
                Some(cursor) => {
                    pairs.insert("cursor".into(), cursor.to_owned());
                }
                None => break,
            }
        }
        assert_eq!(seen, ids);
        assert_eq!(pages, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_cursor_opens_only_for_the_same_user_limit_and_order() {
        let app = App::in_memory();
        let owner = user(&app, "strict@example.com").await;
        let admin = users::create_or_promote_admin(&app, "boss@example.com", "s3cret-pass")
            .await
            .unwrap();
        reports(&app, &owner, 3).await;
        reports(&app, &admin, 3).await;
        let query = ListQuery::parse(&params(&[("limit", "1")])).unwrap();
        let (_, meta) = list_json(&app, &owner, owner.id, &query).await.unwrap();
        let cursor = meta["nextCursor"].as_str().unwrap();
        for (pairs, listed) in [
            (vec![("cursor", cursor), ("limit", "2")], owner.id),
            (vec![("cursor", cursor)], owner.id),
            (
                vec![
                    ("cursor", cursor),
                    ("limit", "1"),
                    ("order", "createdAt:asc"),
                ],
                owner.id,
            ),
            (vec![("cursor", cursor), ("limit", "1")], admin.id),
            (vec![("cursor", "garbage"), ("limit", "1")], owner.id),
            (
                vec![("cursor", &format!("x{cursor}")), ("limit", "1")],
                owner.id,
            ),
        ] {
            let query = ListQuery::parse(&params(&pairs)).unwrap();
            let error = list_json(&app, &admin, listed, &query).await.unwrap_err();
            assert!(matches!(error, ApiError::PageInvalid), "{pairs:?}");
        }
        let same = ListQuery::parse(&params(&[("cursor", cursor), ("limit", "1")])).unwrap();
        let (items, meta) = list_json(&app, &owner, owner.id, &same).await.unwrap();
        assert_eq!((items.len(), meta["page"].as_u64()), (1, Some(2)));
    }

    #[tokio::test]
    async fn only_the_owner_or_an_admin_may_list_and_deleted_owners_are_not_found() {
        let app = App::in_memory();
        let owner = user(&app, "owner@example.com").await;
        let other = user(&app, "other@example.com").await;
        let admin = users::create_or_promote_admin(&app, "admin@example.com", "s3cret-pass")
            .await
            .unwrap();
        reports(&app, &owner, 1).await;
        let query = ListQuery::parse(&params(&[])).unwrap();

        let refused = list_json(&app, &other, owner.id, &query).await.unwrap_err();
        assert!(matches!(refused, ApiError::NoAccess));
        let (items, _) = list_json(&app, &admin, owner.id, &query).await.unwrap();
        assert_eq!(items.len(), 1);

        users::update(&app, owner.id, None, |u| {
            u.status = crate::domain::user::Status::Deleted;
            users::revoke_all_sessions(u);
            Ok(())
        })
        .await
        .unwrap();
        let gone = list_json(&app, &admin, owner.id, &query).await.unwrap_err();
        assert!(matches!(gone, ApiError::UserNotFound));
    }

    #[tokio::test]
    async fn create_signs_the_content_type_and_lists_it_back() {
        let app = App::in_memory();
        let owner = user(&app, "create@example.com").await;
        let new =
            NewReport::parse(Some("a.json"), Some("application/json"), Some("hi"), None).unwrap();
        let created = create_json(&app, owner.id, new).await.unwrap();
        assert_eq!(created["upload"]["method"], "PUT");
        assert_eq!(
            created["upload"]["headers"],
            json!({"Content-Type": "application/json"})
        );
        app.clock.advance(Duration::seconds(1));
        let bare = create_json(&app, owner.id, NewReport::default())
            .await
            .unwrap();
        assert_eq!(bare["upload"]["headers"], json!({}));
        assert!(bare["fileName"].is_null());

        let query = ListQuery::parse(&params(&[("order", "createdAt:asc")])).unwrap();
        let (items, _) = list_json(&app, &owner, owner.id, &query).await.unwrap();
        assert_eq!(items[0]["uuid"], created["uuid"]);
        assert_eq!(items[0]["contentType"], "application/json");
        assert_eq!(items[0]["description"], "hi");
        assert!(items[0]["downloadUrl"].is_string());
    }
}

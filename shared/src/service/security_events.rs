//! Security events: recording what happened to an account, and its owner's (or customer
//! service's) paged, newest-first list.

use std::collections::BTreeMap;

use serde_json::json;

use crate::ApiError;
use crate::app::Core;
use crate::domain::ids::UserId;
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::User;
use crate::error::FieldErrors;
use crate::service::paging::{self, Page, Start};
use crate::service::users;

/// Records `event` on its own, for a change that is not one transaction (or not a write at
/// all, like a login). The change has happened by then, so a failure to record is logged,
/// not answered: the caller's request did what it asked.
pub async fn record(core: &Core, event: SecurityEvent) {
    if let Err(error) = core.events.record(&event).await {
        tracing::error!(
            user = %event.user_id,
            kind = event.kind.as_str(),
            %error,
            "security event not recorded"
        );
    }
}

/// A parsed `GET /users/{uuid}/security-events` query: `page` or `cursor`, and `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    limit: usize,
    start: Start,
}

impl ListQuery {
    /// Reads `page`, `cursor` and `limit` like `GET /users` does: a bad `page` or `cursor` (or
    /// both at once) is "Page is invalid."; a bad `limit` is a field error, as is an `order` or
    /// any `filter[…]` (events have neither).
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
        if params.contains_key("order") {
            fields.insert(
                "order".into(),
                vec!["Security events are listed newest first only.".into()],
            );
        }
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
        Ok(Self { limit, start })
    }
}

/// Lists `owner`'s events for `caller`: the owner or a csrAdmin (403 "No Access." otherwise);
/// 404 "This user does not exist." for an unknown or deleted owner.
pub async fn list(
    core: &Core,
    caller: &User,
    owner: UserId,
    query: &ListQuery,
) -> Result<Page<SecurityEvent>, ApiError> {
    if caller.id != owner && !caller.is_admin() {
        return Err(ApiError::NoAccess);
    }
    // The caller's own account was just loaded by authentication and is live.
    if caller.id != owner && users::find_live(core, owner).await?.is_none() {
        return Err(ApiError::UserNotFound);
    }
    let now = core.clock.now();
    let scope = json!(["security-events", owner, query.limit]).to_string();
    let total = core.events.count_events(owner, now).await?;
    paging::keyed_page(
        &core.hmac_key,
        &scope,
        &query.start,
        query.limit,
        total,
        SecurityEvent::sort_key,
        |start, limit| core.events.list_events(owner, start, limit, now),
    )
    .await
}

//! The admin's user listing and count (`GET /users`, `GET /users/count`).
//!
//! Users are read through index `Query`s only, never a `Scan`: a uuid or exact email filter is
//! a key lookup; otherwise the listing index of the order (or of a name or email-prefix filter)
//! is read, shard by shard (`USERS#<status>#<shard>`), and the shards are merged: a page reads
//! at most `limit + 1` rows of each shard. Counts without a name or email-prefix filter come
//! from the sharded counters.
//!
//! One combination reads every match instead (never every user): an email or name prefix, or a
//! name filter, ordered by another column (createdAt and status excepted for an exact name).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ApiError;
use crate::app::Core;
use crate::domain::ids::UserId;
use crate::domain::user::{
    INDEX_SHARDS, IndexQuery, LISTED_STATUSES, RowFilter, Status, User, UserIndex, UserPartition,
    fold,
};
use crate::service::paging::{Page, Start, open_cursor, seal_cursor};

/// The fewest characters before a prefix search's `*`.
pub const MIN_PREFIX: usize = 3;

/// The longest name there is (`parse_name`): a longer name filter matches nobody.
const MAX_NAME: usize = 100;

/// The columns users can be ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    CreatedAt,
    Email,
    FirstName,
    LastName,
    Status,
}

impl Column {
    pub fn parse(input: &str) -> Option<Self> {
        match input {
            "createdAt" => Some(Self::CreatedAt),
            "email" => Some(Self::Email),
            "firstName" => Some(Self::FirstName),
            "lastName" => Some(Self::LastName),
            "status" => Some(Self::Status),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "createdAt",
            Self::Email => "email",
            Self::FirstName => "firstName",
            Self::LastName => "lastName",
            Self::Status => "status",
        }
    }

    /// The index kept in this column's order (status: creation order within each status).
    fn index(self) -> UserIndex {
        match self {
            Self::CreatedAt | Self::Status => UserIndex::CreatedAt,
            Self::Email => UserIndex::Email,
            Self::FirstName => UserIndex::FirstName,
            Self::LastName => UserIndex::LastName,
        }
    }

    /// A row's place in this column's order.
    fn position(self, user: &User) -> Position {
        Position {
            status: (self == Self::Status).then(|| user.status.as_str().to_owned()),
            key: self.index().sort_key(user),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    pub column: Column,
    pub ascending: bool,
}

impl Default for Order {
    fn default() -> Self {
        Self {
            column: Column::CreatedAt,
            ascending: true,
        }
    }
}

/// How a text filter (`filter[email]`, `filter[firstName]`, `filter[lastName]`) matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextMatch {
    /// The value itself (an email ignoring case, a name exactly).
    Exact(String),
    /// Values starting with this, ignoring case (`fold`ed).
    Prefix(String),
}

impl TextMatch {
    /// A trailing `*` after at least [`MIN_PREFIX`] characters asks for a prefix; a `*`
    /// anywhere else is a literal character. A shorter prefix is refused with the message.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        match value.strip_suffix('*') {
            Some(prefix) if prefix.chars().count() >= MIN_PREFIX => Ok(Self::Prefix(fold(prefix))),
            Some(_) => Err("A prefix search needs at least 3 characters before the *."),
            None => Ok(Self::Exact(value.to_owned())),
        }
    }

    fn lenient(value: &str) -> Self {
        Self::parse(value).unwrap_or_else(|_| Self::Exact(value.to_owned()))
    }

    /// Whether no stored value can match: control characters (which no name or email holds,
    /// and which would reach into the index's separators) or a name longer than any.
    fn impossible(&self, max_chars: usize) -> bool {
        let text = match self {
            Self::Exact(text) | Self::Prefix(text) => text,
        };
        text.chars().any(char::is_control) || text.chars().count() > max_chars
    }
}

/// Filters; `email` compares without case, names exactly, and a trailing `*` (after at least 3
/// characters) makes any of the three a case-insensitive prefix. Deleted users never match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFilters {
    pub email: Option<String>,
    pub uuid: Option<UserId>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub status: Option<Status>,
}

/// One text filter on an indexed column.
#[derive(Clone, Debug)]
struct Condition {
    index: UserIndex,
    text: TextMatch,
}

impl Condition {
    /// The key prefix of this condition's rows in its own index.
    fn key_prefix(&self) -> String {
        match &self.text {
            TextMatch::Exact(value) => UserIndex::exact_prefix(value),
            TextMatch::Prefix(prefix) => prefix.clone(),
        }
    }

    /// The row filters that check this condition on a row read through another index (or,
    /// for the case of an exact name, through its own).
    fn row_filters(&self, own_index: bool) -> Vec<RowFilter> {
        let mut filters = Vec::new();
        if !own_index {
            filters.push(RowFilter::KeyPrefix(self.index, self.key_prefix()));
        }
        if let TextMatch::Exact(value) = &self.text {
            match self.index {
                UserIndex::FirstName => filters.push(RowFilter::FirstName(value.clone())),
                UserIndex::LastName => filters.push(RowFilter::LastName(value.clone())),
                UserIndex::Email | UserIndex::CreatedAt => {}
            }
        }
        filters
    }

    fn matches(&self, user: &User) -> bool {
        self.row_filters(false).iter().all(|f| f.matches(user))
    }
}

impl UserFilters {
    fn partition(&self) -> UserPartition {
        match self.status {
            Some(status) => UserPartition::Status(status),
            None => UserPartition::Live,
        }
    }

    /// The index partitions' statuses, in ascending order.
    fn statuses(&self) -> Vec<Status> {
        match self.status {
            Some(status) => vec![status],
            None => LISTED_STATUSES.to_vec(),
        }
    }

    /// The text filters answered through an index (an exact email is a key lookup instead).
    fn conditions(&self) -> Vec<Condition> {
        let mut conditions = Vec::new();
        if let Some(email) = &self.email
            && let TextMatch::Prefix(_) = TextMatch::lenient(email)
        {
            conditions.push(Condition {
                index: UserIndex::Email,
                text: TextMatch::lenient(email),
            });
        }
        for (index, name) in [
            (UserIndex::FirstName, &self.first_name),
            (UserIndex::LastName, &self.last_name),
        ] {
            if let Some(name) = name {
                conditions.push(Condition {
                    index,
                    text: TextMatch::lenient(name),
                });
            }
        }
        conditions
    }

    /// Whether some filter can match no stored user whatever the data.
    fn impossible(&self) -> bool {
        self.conditions().iter().any(|c| {
            c.text.impossible(if c.index == UserIndex::Email {
                usize::MAX
            } else {
                MAX_NAME
            })
        })
    }

    fn matches(&self, user: &User) -> bool {
        self.partition().contains(user)
            && self.uuid.is_none_or(|id| id == user.id)
            && self
                .email
                .as_ref()
                .is_none_or(|email| match TextMatch::lenient(email) {
                    TextMatch::Exact(email) => email.to_lowercase() == user.email_key(),
                    TextMatch::Prefix(prefix) => fold(&user.email).starts_with(&prefix),
                })
            && self.conditions().iter().all(|c| c.matches(user))
    }

    /// The users an exact email or uuid filter points at, read by key; `None` without one.
    async fn looked_up(&self, core: &Core) -> Result<Option<Vec<User>>, ApiError> {
        let found = if let Some(id) = self.uuid {
            core.users.get_user(id).await?
        } else if let Some(TextMatch::Exact(email)) = self.email.as_deref().map(TextMatch::lenient)
        {
            core.users.find_user_by_email(&email.to_lowercase()).await?
        } else {
            return Ok(None);
        };
        Ok(Some(
            found.into_iter().filter(|u| self.matches(u)).collect(),
        ))
    }
}

/// How a query is read: which index, which range of it, what else rows must meet, and
/// whether the index order is the order asked for.
struct Plan {
    index: UserIndex,
    prefix: Option<String>,
    filters: Vec<RowFilter>,
    /// The rows come in the requested order (a page reads `limit + 1` per shard); otherwise
    /// every match is read and sorted.
    direct: bool,
}

impl Plan {
    fn new(filters: &UserFilters, order: Order) -> Self {
        let conditions = filters.conditions();
        let own = conditions
            .iter()
            .position(|c| c.index == order.column.index());
        let exact_in_creation_order = || {
            matches!(order.column, Column::CreatedAt | Column::Status)
                .then(|| {
                    conditions
                        .iter()
                        .position(|c| matches!(c.text, TextMatch::Exact(_)))
                })
                .flatten()
        };
        let (driver, direct) = match (own, exact_in_creation_order()) {
            (Some(i), _) => (Some(i), true),
            // Within one exact value an index is in creation order.
            (None, Some(i)) => (Some(i), true),
            (None, None) if conditions.is_empty() => (None, true),
            (None, None) => (Some(0), false),
        };
        let Some(driver) = driver else {
            return Self {
                index: order.column.index(),
                prefix: None,
                filters: Vec::new(),
                direct,
            };
        };
        let mut row_filters = Vec::new();
        for (i, condition) in conditions.iter().enumerate() {
            row_filters.extend(condition.row_filters(i == driver));
        }
        Self {
            index: conditions[driver].index,
            prefix: Some(conditions[driver].key_prefix()),
            filters: row_filters,
            direct,
        }
    }

    /// A row's place in the order this plan reads in.
    fn position(&self, order: Order, user: &User) -> Position {
        if self.direct {
            Position {
                status: (order.column == Column::Status).then(|| user.status.as_str().to_owned()),
                key: self.index.sort_key(user),
            }
        } else {
            order.column.position(user)
        }
    }

    /// The query of one shard, resuming after `after` (a position of this plan).
    fn shard_query(
        &self,
        status: Status,
        shard: u32,
        ascending: bool,
        after: Option<String>,
    ) -> IndexQuery {
        IndexQuery {
            index: self.index,
            status,
            shard,
            prefix: self.prefix.clone(),
            after,
            ascending,
            filters: self.filters.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct UserQuery {
    pub filters: UserFilters,
    pub order: Order,
    pub limit: usize,
    pub start: Start,
}

impl UserQuery {
    /// Everything a cursor is bound to.
    fn scope(&self) -> String {
        let f = &self.filters;
        json!([
            "users.v2",
            self.order.column.as_str(),
            self.order.ascending,
            self.limit,
            f.email.as_ref().map(|e| e.to_lowercase()),
            f.uuid,
            f.first_name,
            f.last_name,
            f.status.map(Status::as_str),
        ])
        .to_string()
    }
}

/// A row's place in the order: its status (in status order), then its key in the index read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Position {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    key: String,
}

/// What a cursor carries: the page it opens and the last row before it.
#[derive(Serialize, Deserialize)]
struct CursorState {
    page: u64,
    after: Position,
}

fn direction(ascending: bool, ordering: Ordering) -> Ordering {
    if ascending {
        ordering
    } else {
        ordering.reverse()
    }
}

/// One page of the users matching `query`.
pub async fn list_users(core: &Core, query: &UserQuery) -> Result<Page<User>, ApiError> {
    let scope = query.scope();
    let (page, after) = match &query.start {
        Start::Page(page) => (*page, None),
        Start::Cursor(cursor) => {
            let state: CursorState = open_cursor(&core.hmac_key, &scope, cursor)?;
            (state.page, Some(state.after))
        }
    };
    let filters = &query.filters;
    let plan = Plan::new(filters, query.order);
    let (total, mut rows) = if filters.impossible() {
        (0, Vec::new())
    } else if let Some(users) = filters.looked_up(core).await? {
        let total = users.len() as u64;
        (total, sorted_rows(users, query, page, after))
    } else if plan.direct {
        let total = count(core, filters, &plan).await?;
        (
            total,
            direct_rows(core, query, &plan, page, after, total).await?,
        )
    } else {
        let users = read_all(core, filters, &plan).await?;
        (users.len() as u64, sorted_rows(users, query, page, after))
    };
    let more = rows.len() > query.limit;
    rows.truncate(query.limit);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(seal_cursor(
            &core.hmac_key,
            &scope,
            &CursorState {
                page: page + 1,
                after: plan.position(query.order, last),
            },
        )),
        _ => None,
    };
    Ok(Page {
        items: rows,
        page,
        limit: query.limit,
        total,
        next_cursor,
    })
}

/// Every shard `(status, shard)` a query reads, statuses in ascending order.
fn shards(filters: &UserFilters) -> Vec<(Status, u32)> {
    filters
        .statuses()
        .into_iter()
        .flat_map(|status| (0..INDEX_SHARDS).map(move |shard| (status, shard)))
        .collect()
}

/// Runs `read` on every query at once, results in the queries' order.
async fn each<T: Send + 'static, F>(
    core: &Core,
    queries: Vec<IndexQuery>,
    read: impl Fn(std::sync::Arc<dyn crate::domain::user::UserStore>, IndexQuery) -> F,
) -> Result<Vec<T>, ApiError>
where
    F: Future<Output = Result<T, crate::domain::StoreError>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    // A spawned task starts without the request's task-locals: the function serving it is
    // carried over, so each shard's read is still the function's (IAM records, logs).
    let function = crate::telemetry::FUNCTION
        .try_with(|function| *function)
        .ok();
    for (i, query) in queries.into_iter().enumerate() {
        let reading = read(core.users.clone(), query);
        let task = async move { (i, reading.await) };
        match function {
            Some(function) => tasks.spawn(crate::telemetry::FUNCTION.scope(function, task)),
            None => tasks.spawn(task),
        };
    }
    let mut results: Vec<Option<T>> = std::iter::repeat_with(|| None).take(tasks.len()).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, result) = done.map_err(|e| ApiError::Internal(e.to_string()))?;
        results[i] = Some(result?);
    }
    Ok(results.into_iter().flatten().collect())
}

/// Up to `limit + 1` rows of the page, merged from each shard's first `limit + 1` rows after
/// the page's start (a `page` offset is first skipped reading keys only).
async fn direct_rows(
    core: &Core,
    query: &UserQuery,
    plan: &Plan,
    page: u64,
    after: Option<Position>,
    total: u64,
) -> Result<Vec<User>, ApiError> {
    let ascending = query.order.ascending;
    let want = query.limit + 1;
    let after = match after {
        Some(after) => Some(after),
        None => {
            let Some(skip) = offset(page, query.limit).filter(|&o| (o as u64) < total) else {
                return Ok(Vec::new());
            };
            if skip == 0 {
                None
            } else {
                match skip_to(core, query, plan, skip).await? {
                    Some(position) => Some(position),
                    None => return Ok(Vec::new()),
                }
            }
        }
    };
    let by_status = query.order.column == Column::Status;
    let mut statuses = query.filters.statuses();
    if !ascending {
        statuses.reverse();
    }
    let mut rows: Vec<(Position, User)> = Vec::new();
    // In status order the statuses are read one after the other, until the page is full.
    let groups: Vec<Vec<Status>> = if by_status {
        statuses.into_iter().map(|s| vec![s]).collect()
    } else {
        vec![statuses]
    };
    for group in groups {
        let mut queries = Vec::new();
        for status in group {
            let from = match &after {
                None => None,
                Some(position) if by_status => {
                    match direction(
                        ascending,
                        position
                            .status
                            .as_deref()
                            .unwrap_or("")
                            .cmp(status.as_str()),
                    ) {
                        // The cursor is past this status already.
                        Ordering::Greater => continue,
                        Ordering::Equal => Some(position.key.clone()),
                        Ordering::Less => None,
                    }
                }
                Some(position) => Some(position.key.clone()),
            };
            for shard in 0..INDEX_SHARDS {
                queries.push(plan.shard_query(status, shard, ascending, from.clone()));
            }
        }
        let read = each(core, queries, move |users, q| async move {
            users.query_index(&q, want).await
        })
        .await?;
        let mut merged: Vec<(Position, User)> = read
            .into_iter()
            .flatten()
            .map(|u| (plan.position(query.order, &u), u))
            .collect();
        merged.sort_by(|a, b| direction(ascending, a.0.cmp(&b.0)));
        rows.extend(merged);
        if rows.len() >= want {
            break;
        }
    }
    rows.truncate(want);
    Ok(rows.into_iter().map(|(_, user)| user).collect())
}

/// The position of the last row before offset `skip` (`None`: fewer rows), reading keys only:
/// each shard's first `skip` keys, merged.
async fn skip_to(
    core: &Core,
    query: &UserQuery,
    plan: &Plan,
    skip: usize,
) -> Result<Option<Position>, ApiError> {
    let ascending = query.order.ascending;
    let by_status = query.order.column == Column::Status;
    let parts = shards(&query.filters);
    let queries: Vec<IndexQuery> = parts
        .iter()
        .map(|(status, shard)| plan.shard_query(*status, *shard, ascending, None))
        .collect();
    let keys = each(core, queries, move |users, q| async move {
        users.index_keys(&q, skip).await
    })
    .await?;
    let mut positions: Vec<Position> = parts
        .iter()
        .zip(keys)
        .flat_map(|((status, _), keys)| {
            keys.into_iter().map(move |key| Position {
                status: by_status.then(|| status.as_str().to_owned()),
                key,
            })
        })
        .collect();
    if positions.len() < skip {
        return Ok(None);
    }
    positions.sort_by(|a, b| direction(ascending, a.cmp(b)));
    Ok(positions.into_iter().nth(skip - 1))
}

/// Every match, through the plan's index (for an order the index does not keep).
async fn read_all(core: &Core, filters: &UserFilters, plan: &Plan) -> Result<Vec<User>, ApiError> {
    let queries = shards(filters)
        .into_iter()
        .map(|(status, shard)| plan.shard_query(status, shard, true, None))
        .collect();
    let read = each(core, queries, |users, q| async move {
        users.query_index(&q, usize::MAX).await
    })
    .await?;
    Ok(read.into_iter().flatten().collect())
}

/// How many users match, for a plan without a lookup: the counters (of a status, or of one
/// exact name), or, for a prefix or two text filters, a count of the plan's range in every
/// shard.
async fn count(core: &Core, filters: &UserFilters, plan: &Plan) -> Result<u64, ApiError> {
    if plan.prefix.is_none() {
        return Ok(core.users.count_users(filters.partition()).await?);
    }
    if let [
        Condition {
            index: index @ (UserIndex::FirstName | UserIndex::LastName),
            text: TextMatch::Exact(name),
        },
    ] = filters.conditions().as_slice()
    {
        return Ok(core
            .users
            .count_by_name(filters.partition(), *index, name)
            .await?);
    }
    let queries = shards(filters)
        .into_iter()
        .map(|(status, shard)| plan.shard_query(status, shard, true, None))
        .collect();
    let counts = each(core, queries, |users, q| async move {
        users.count_index(&q).await
    })
    .await?;
    Ok(counts.into_iter().sum())
}

/// Up to `limit + 1` rows of the page, from every matching user sorted in memory.
fn sorted_rows(
    users: Vec<User>,
    query: &UserQuery,
    page: u64,
    after: Option<Position>,
) -> Vec<User> {
    let column = query.order.column;
    let ascending = query.order.ascending;
    let mut rows: Vec<(Position, User)> = users
        .into_iter()
        .map(|u| (column.position(&u), u))
        .collect();
    rows.sort_by(|a, b| direction(ascending, a.0.cmp(&b.0)));
    let skip = match &after {
        Some(after) => rows
            .iter()
            .take_while(|(position, _)| {
                direction(ascending, position.cmp(after)) != Ordering::Greater
            })
            .count(),
        None => offset(page, query.limit).unwrap_or(usize::MAX),
    };
    rows.into_iter()
        .skip(skip)
        .take(query.limit + 1)
        .map(|(_, user)| user)
        .collect()
}

fn offset(page: u64, limit: usize) -> Option<usize> {
    usize::try_from(page - 1).ok()?.checked_mul(limit)
}

/// How many users match `filters`.
pub async fn count_users(core: &Core, filters: &UserFilters) -> Result<u64, ApiError> {
    if filters.impossible() {
        return Ok(0);
    }
    if let Some(users) = filters.looked_up(core).await? {
        return Ok(users.len() as u64);
    }
    let plan = Plan::new(filters, Order::default());
    count(core, filters, &plan).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::App;
    use time::{Duration, OffsetDateTime};

    /// Users created one minute apart, in this order.
    async fn seed(app: &App, people: &[(&str, Option<&str>, Status)]) -> Vec<User> {
        let start = OffsetDateTime::now_utc() - Duration::days(1);
        let mut created = Vec::new();
        for (i, (email, first_name, status)) in people.iter().enumerate() {
            let at = start + Duration::minutes(i as i64);
            let user = User {
                id: UserId::new(),
                email: (*email).to_owned(),
                email_verified: false,
                first_name: first_name.map(str::to_owned),
                last_name: None,
                full_name: None,
                status: *status,
                roles: Vec::new(),
                marketing_opt_in: false,
                tos_agreed_at: Some(at),
                password_hash: "unused".into(),
                version: 1,
                session_epoch: 0,
                mobile: None,
                pending_mobile: None,
                factors: Default::default(),
                created_at: at,
                updated_at: at,
            };
            app.users.create_user(&user).await.unwrap();
            created.push(user);
        }
        created
    }

    fn query(order: Order, limit: usize, start: Start) -> UserQuery {
        UserQuery {
            filters: UserFilters::default(),
            order,
            limit,
            start,
        }
    }

    fn emails(page: &Page<User>) -> Vec<&str> {
        page.items.iter().map(|u| u.email.as_str()).collect()
    }

    async fn numbered(app: &App, count: usize) -> Vec<User> {
        let people: Vec<(String, Option<&str>, Status)> = (0..count)
            .map(|i| (format!("u{i:02}@example.com"), None, Status::Active))
            .collect();
        let people: Vec<(&str, Option<&str>, Status)> = people
            .iter()
            .map(|(e, f, s)| (e.as_str(), *f, *s))
            .collect();
        seed(app, &people).await
    }

    #[tokio::test]
    async fn pages_in_creation_order_report_the_total_and_a_cursor_until_the_last() {
        let app = App::in_memory();
        numbered(&app, 5).await;
        let first = list_users(&app, &query(Order::default(), 2, Start::Page(1)))
            .await
            .unwrap();
        assert_eq!(emails(&first), ["u00@example.com", "u01@example.com"]);
        assert_eq!((first.total, first.page), (5, 1));
        assert!(first.next_cursor.is_some());
        let last = list_users(&app, &query(Order::default(), 2, Start::Page(3)))
            .await
            .unwrap();
        assert_eq!(emails(&last), ["u04@example.com"]);
        assert_eq!(last.next_cursor, None);
        let beyond = list_users(&app, &query(Order::default(), 2, Start::Page(9)))
            .await
            .unwrap();
        assert!(beyond.items.is_empty());
        assert_eq!((beyond.total, beyond.next_cursor), (5, None));
    }

    #[tokio::test]
    async fn cursors_walk_every_order_without_gaps_or_repeats() {
        let app = App::in_memory();
        let people = [
            ("b@example.com", Some("Zed"), Status::Active),
            ("A@example.com", None, Status::Inactive),
            ("c@example.com", Some("Amy"), Status::Active),
            ("d@example.com", Some("Amy"), Status::Inactive),
            ("e@example.com", None, Status::Active),
        ];
        seed(&app, &people).await;
        for column in [
            Column::CreatedAt,
            Column::Email,
            Column::FirstName,
            Column::LastName,
            Column::Status,
        ] {
            for ascending in [true, false] {
                let order = Order { column, ascending };
                let all = list_users(&app, &query(order, 100, Start::Page(1)))
                    .await
                    .unwrap();
                let mut walked = Vec::new();
                let mut start = Start::Page(1);
                loop {
                    let page = list_users(&app, &query(order, 2, start)).await.unwrap();
                    assert_eq!(page.total, 5);
                    walked.extend(page.items.iter().map(|u| u.email.clone()));
                    match page.next_cursor {
                        Some(cursor) => start = Start::Cursor(cursor),
                        None => break,
                    }
                }
                let expected: Vec<String> = all.items.iter().map(|u| u.email.clone()).collect();
                assert_eq!(walked, expected, "{column:?} ascending={ascending}");
            }
        }
    }

    #[tokio::test]
    async fn sorting_puts_missing_names_first_and_compares_emails_without_case() {
        let app = App::in_memory();
        seed(
            &app,
            &[
                ("b@example.com", Some("Zed"), Status::Active),
                ("A@example.com", None, Status::Inactive),
                ("c@example.com", Some("Amy"), Status::Active),
            ],
        )
        .await;
        let by = |column, ascending| query(Order { column, ascending }, 10, Start::Page(1));
        let page = list_users(&app, &by(Column::FirstName, true))
            .await
            .unwrap();
        assert_eq!(
            emails(&page),
            ["A@example.com", "c@example.com", "b@example.com"]
        );
        let page = list_users(&app, &by(Column::Email, true)).await.unwrap();
        assert_eq!(
            emails(&page),
            ["A@example.com", "b@example.com", "c@example.com"]
        );
        let page = list_users(&app, &by(Column::Status, false)).await.unwrap();
        assert_eq!(page.items[0].email, "A@example.com");
        let page = list_users(&app, &by(Column::CreatedAt, false))
            .await
            .unwrap();
        assert_eq!(
            emails(&page),
            ["c@example.com", "A@example.com", "b@example.com"]
        );
    }

    #[tokio::test]
    async fn filters_match_exactly_and_never_show_deleted_users() {
        let app = App::in_memory();
        let users = seed(
            &app,
            &[
                ("ada@example.com", Some("Ada"), Status::Active),
                ("grace@example.com", Some("Grace"), Status::Inactive),
                ("gone@example.com", Some("Ada"), Status::Deleted),
                ("adam@example.com", Some("Adam"), Status::Active),
            ],
        )
        .await;
        let run = |filters: UserFilters| {
            let app = app.clone();
            async move {
                let q = UserQuery {
                    filters: filters.clone(),
                    ..query(Order::default(), 10, Start::Page(1))
                };
                let page = list_users(&app, &q).await.unwrap();
                assert_eq!(page.total, count_users(&app, &filters).await.unwrap());
                page.items.into_iter().map(|u| u.email).collect::<Vec<_>>()
            }
        };
        let email = |e: &str| UserFilters {
            email: Some(e.into()),
            ..Default::default()
        };
        assert_eq!(run(email("ADA@example.com")).await, ["ada@example.com"]);
        assert!(run(email("gone@example.com")).await.is_empty());
        let first = UserFilters {
            first_name: Some("Ada".into()),
            ..Default::default()
        };
        assert_eq!(run(first).await, ["ada@example.com"]);
        let inactive = UserFilters {
            status: Some(Status::Inactive),
            ..Default::default()
        };
        assert_eq!(run(inactive).await, ["grace@example.com"]);
        let by_id = |id: UserId, status| UserFilters {
            uuid: Some(id),
            status,
            ..Default::default()
        };
        assert_eq!(run(by_id(users[1].id, None)).await, ["grace@example.com"]);
        assert!(
            run(by_id(users[1].id, Some(Status::Active)))
                .await
                .is_empty()
        );
        assert!(run(by_id(users[2].id, None)).await.is_empty());
        assert_eq!(run(UserFilters::default()).await.len(), 3);
    }

    #[tokio::test]
    async fn a_cursor_opens_only_for_the_same_order_filters_and_limit() {
        let app = App::in_memory();
        numbered(&app, 4).await;
        let first = list_users(&app, &query(Order::default(), 2, Start::Page(1)))
            .await
            .unwrap();
        let cursor = first.next_cursor.unwrap();
        let second = list_users(
            &app,
            &query(Order::default(), 2, Start::Cursor(cursor.clone())),
        )
        .await
        .unwrap();
        assert_eq!(second.page, 2);
        assert_eq!(emails(&second), ["u02@example.com", "u03@example.com"]);
        let other_limit = query(Order::default(), 3, Start::Cursor(cursor.clone()));
        let other_order = query(
            Order {
                column: Column::Email,
                ascending: true,
            },
            2,
            Start::Cursor(cursor.clone()),
        );
        let other_filter = UserQuery {
            filters: UserFilters {
                status: Some(Status::Active),
                ..Default::default()
            },
            ..query(Order::default(), 2, Start::Cursor(cursor.clone()))
        };
        let tampered = query(Order::default(), 2, Start::Cursor(format!("x{cursor}")));
        let garbage = query(Order::default(), 2, Start::Cursor("garbage".into()));
        for q in [other_limit, other_order, other_filter, tampered, garbage] {
            assert!(
                matches!(list_users(&app, &q).await, Err(ApiError::PageInvalid)),
                "{q:?}"
            );
        }
    }
}

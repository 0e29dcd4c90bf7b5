//! The admin's user listing and count (`GET /users`, `GET /users/count`).
//!
//! Users are read through index `Query`s only, never a `Scan`: a uuid or email filter is a key
//! lookup; otherwise the live-user index (or the status index) is walked. Creation order is the
//! index order, so those pages are read straight from it; any other order, or a name filter,
//! reads the partition's users and sorts them in memory.

use std::cmp::Ordering;

use serde::Serialize;
use serde_json::json;

use crate::ApiError;
use crate::app::Core;
use crate::domain::ids::UserId;
use crate::domain::user::{Status, User};
use crate::domain::user::{UserPartition, user_sort_key};
use crate::service::paging::{Page, Start, open_cursor, seal_cursor};

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

    /// The value sorted on (`None` first when ascending); creation order is the sort key itself.
    fn value(self, user: &User) -> Option<String> {
        match self {
            Self::CreatedAt => None,
            Self::Email => Some(user.email_key()),
            Self::FirstName => user.first_name.clone(),
            Self::LastName => user.last_name.clone(),
            Self::Status => Some(user.status.as_str().to_owned()),
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

/// Exact-match filters; `email` compares without case. Deleted users never match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFilters {
    pub email: Option<String>,
    pub uuid: Option<UserId>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub status: Option<Status>,
}

impl UserFilters {
    fn partition(&self) -> UserPartition {
        match self.status {
            Some(status) => UserPartition::Status(status),
            None => UserPartition::Live,
        }
    }

    fn matches(&self, user: &User) -> bool {
        self.partition().contains(user)
            && self.uuid.is_none_or(|id| id == user.id)
            && self
                .email
                .as_ref()
                .is_none_or(|email| email.to_lowercase() == user.email_key())
            && self
                .first_name
                .as_ref()
                .is_none_or(|name| user.first_name.as_ref() == Some(name))
            && self
                .last_name
                .as_ref()
                .is_none_or(|name| user.last_name.as_ref() == Some(name))
    }

    fn has_name_filter(&self) -> bool {
        self.first_name.is_some() || self.last_name.is_some()
    }

    /// The users an email or uuid filter points at, read by key; `None` without such a filter.
    async fn looked_up(&self, core: &Core) -> Result<Option<Vec<User>>, ApiError> {
        let found = if let Some(id) = self.uuid {
            core.users.get_user(id).await?
        } else if let Some(email) = &self.email {
            core.users.find_user_by_email(&email.to_lowercase()).await?
        } else {
            return Ok(None);
        };
        Ok(Some(
            found.into_iter().filter(|u| self.matches(u)).collect(),
        ))
    }

    /// Every matching user, through the partition's index.
    async fn read_all(&self, core: &Core) -> Result<Vec<User>, ApiError> {
        if let Some(users) = self.looked_up(core).await? {
            return Ok(users);
        }
        let mut users = core
            .users
            .list_users(self.partition(), None, None, true)
            .await?;
        users.retain(|u| self.matches(u));
        Ok(users)
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
            "users",
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

/// A row's place in the order: the column's value, then the index sort key (unique).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
struct Position {
    value: Option<String>,
    key: String,
}

impl Position {
    fn of(user: &User, column: Column) -> Self {
        Self {
            value: column.value(user),
            key: user_sort_key(user),
        }
    }
}

/// What a cursor carries: the page it opens and the last row before it.
#[derive(Serialize, serde::Deserialize)]
struct CursorState {
    page: u64,
    after: Position,
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
    let by_index = query.order.column == Column::CreatedAt
        && filters.uuid.is_none()
        && filters.email.is_none()
        && !filters.has_name_filter();
    let (total, mut rows) = if by_index {
        index_rows(core, query, page, after).await?
    } else {
        let users = filters.read_all(core).await?;
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
                after: Position::of(last, query.order.column),
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

/// The total and up to `limit + 1` rows of the page, read in index (creation) order.
async fn index_rows(
    core: &Core,
    query: &UserQuery,
    page: u64,
    after: Option<Position>,
) -> Result<(u64, Vec<User>), ApiError> {
    let partition = query.filters.partition();
    let ascending = query.order.ascending;
    let total = core.users.count_users(partition).await?;
    let rows = match after {
        Some(after) => {
            core.users
                .list_users(
                    partition,
                    Some(&after.key),
                    Some(query.limit + 1),
                    ascending,
                )
                .await?
        }
        None => {
            let Some(offset) = offset(page, query.limit).filter(|&o| (o as u64) < total) else {
                return Ok((total, Vec::new()));
            };
            let mut rows = core
                .users
                .list_users(partition, None, Some(offset + query.limit + 1), ascending)
                .await?;
            rows.drain(..offset.min(rows.len()));
            rows
        }
    };
    Ok((total, rows))
}

/// Up to `limit + 1` rows of the page, from every matching user sorted in memory.
fn sorted_rows(
    users: Vec<User>,
    query: &UserQuery,
    page: u64,
    after: Option<Position>,
) -> Vec<User> {
    let column = query.order.column;
    let mut rows: Vec<(Position, User)> = users
        .into_iter()
        .map(|u| (Position::of(&u, column), u))
        .collect();
    let direction = |ordering: Ordering| {
        if query.order.ascending {
            ordering
        } else {
            ordering.reverse()
        }
    };
    rows.sort_by(|a, b| direction(a.0.cmp(&b.0)));
    let skip = match &after {
        Some(after) => rows
            .iter()
            .take_while(|(position, _)| direction(position.cmp(after)) != Ordering::Greater)
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
    if filters.uuid.is_none() && filters.email.is_none() && !filters.has_name_filter() {
        return Ok(core.users.count_users(filters.partition()).await?);
    }
    Ok(filters.read_all(core).await?.len() as u64)
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

//! `GET /users` and `GET /users/count`: the admin's listing. Query parameters are parsed here;
//! `shared::service::user_listing` reads the users.
//!
//! Unknown parameters are ignored (clients add cache busters), except under `filter`, where an
//! unknown name is a field error: a mistyped filter would otherwise silently list everyone.

use std::collections::BTreeMap;

use lambda_http::Request;
use serde_json::{Value, json};
use shared::domain::email::Email;
use shared::domain::ids::UserId;
use shared::domain::user::Status;
use shared::error::FieldErrors;
use shared::http;
use shared::http::Response;
use shared::http::views;
use shared::service::paging::{self, Start};
use shared::service::user_listing;
use shared::service::user_listing::{Column, Order, TextMatch, UserFilters, UserQuery};
use shared::{Access, ApiError, MailContext};

pub async fn list(app: &impl MailContext, req: &Request) -> Result<Response, ApiError> {
    admin(app, req).await?;
    let query = parse_query(&http::query(req))?;
    let page = user_listing::list_users(app.core(), &query).await?;
    let users: Vec<Value> = page.items.iter().map(views::user).collect();
    Ok(http::list(users, views::meta(&page)))
}

pub async fn count(app: &impl MailContext, req: &Request) -> Result<Response, ApiError> {
    admin(app, req).await?;
    let mut fields = FieldErrors::new();
    let filters = parse_filters(&http::query(req), &mut fields);
    if !fields.is_empty() {
        return Err(ApiError::Validation(fields));
    }
    let count = user_listing::count_users(app.core(), &filters).await?;
    Ok(http::ok(json!({ "count": count })))
}

/// Only a csrAdmin lists users.
async fn admin(app: &impl MailContext, req: &Request) -> Result<(), ApiError> {
    let principal = app.core().authenticate(req, Access::Full).await?;
    if principal.user.is_admin() {
        Ok(())
    } else {
        Err(ApiError::NoAccess)
    }
}

fn parse_query(params: &BTreeMap<String, String>) -> Result<UserQuery, ApiError> {
    let get = |name: &str| params.get(name).map(String::as_str);
    let page = paging::parse_page(get("page"))?;
    let mut fields = FieldErrors::new();
    let limit = match paging::parse_limit(get("limit")) {
        Ok(limit) => limit,
        Err(ApiError::Validation(errors)) => {
            fields.extend(errors);
            paging::DEFAULT_LIMIT
        }
        Err(other) => return Err(other),
    };
    let order = match get("order").map(parse_order) {
        None => Order::default(),
        Some(Some(order)) => order,
        Some(None) => {
            fields.insert(
                "order".into(),
                vec![
                    "Must be column:asc or column:desc, the column one of createdAt, email, \
                     firstName, lastName, status."
                        .into(),
                ],
            );
            Order::default()
        }
    };
    let filters = parse_filters(params, &mut fields);
    if !fields.is_empty() {
        return Err(ApiError::Validation(fields));
    }
    let start = match get("cursor") {
        Some(cursor) => Start::Cursor(cursor.to_owned()),
        None => Start::Page(page),
    };
    Ok(UserQuery {
        filters,
        order,
        limit,
        start,
    })
}

/// `column:asc`, `column:desc`, or a bare `column` (ascending).
fn parse_order(input: &str) -> Option<Order> {
    let (column, direction) = input.split_once(':').unwrap_or((input, "asc"));
    let ascending = match direction {
        "asc" => true,
        "desc" => false,
        _ => return None,
    };
    Some(Order {
        column: Column::parse(column)?,
        ascending,
    })
}

/// The `filter[...]` parameters; problems go into `fields` under the parameter's own name.
fn parse_filters(params: &BTreeMap<String, String>, fields: &mut FieldErrors) -> UserFilters {
    let mut filters = UserFilters::default();
    for (key, value) in params.iter().filter(|(key, _)| key.starts_with("filter")) {
        let mut fail = |message: &str| {
            fields
                .entry(key.clone())
                .or_default()
                .push(message.to_owned());
        };
        let name = key
            .strip_prefix("filter[")
            .and_then(|rest| rest.strip_suffix(']'));
        if value.is_empty() && name.is_some() {
            fail("Must not be empty.");
            continue;
        }
        match name {
            // Longer than any address: refused before the lookup, whose key it would overflow.
            Some("email") if Email::too_long(value) => fail("Must be at most 254 bytes."),
            Some("email" | "firstName" | "lastName")
                if let Err(message) = TextMatch::parse(value) =>
            {
                fail(message)
            }
            Some("email") => filters.email = Some(value.clone()),
            Some("uuid") => match UserId::parse(value) {
                Some(id) => filters.uuid = Some(id),
                None => fail("Must be a UUID."),
            },
            Some("firstName") => filters.first_name = Some(value.clone()),
            Some("lastName") => filters.last_name = Some(value.clone()),
            Some("status") => match Status::parse_visible(value) {
                Some(status) => filters.status = Some(status),
                None => fail("Must be one of active, inactive."),
            },
            _ => fail(
                "Unknown filter: use filter[email], filter[uuid], filter[firstName], filter[lastName] or filter[status].",
            ),
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn field_errors(pairs: &[(&str, &str)]) -> Vec<String> {
        match parse_query(&params(pairs)) {
            Err(ApiError::Validation(fields)) => fields.into_keys().collect(),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_first_page_of_twenty_in_creation_order() {
        let query = parse_query(&params(&[])).unwrap();
        assert_eq!((query.limit, query.start), (20, Start::Page(1)));
        assert_eq!(query.order, Order::default());
        assert_eq!(query.filters, UserFilters::default());
    }

    #[test]
    fn every_documented_parameter_is_read() {
        let query = parse_query(&params(&[
            ("page", "3"),
            ("limit", "5"),
            ("order", "lastName:desc"),
            ("filter[email]", "Ada@Example.com"),
            ("filter[firstName]", "Ada"),
            ("filter[lastName]", "King"),
            ("filter[status]", "inactive"),
            ("filter[uuid]", "4f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9b"),
            ("_", "1714564800"),
        ]))
        .unwrap();
        assert_eq!((query.limit, query.start), (5, Start::Page(3)));
        assert_eq!(
            query.order,
            Order {
                column: Column::LastName,
                ascending: false
            }
        );
        assert_eq!(query.filters.status, Some(Status::Inactive));
        assert_eq!(query.filters.email.as_deref(), Some("Ada@Example.com"));
        assert!(query.filters.uuid.is_some());
    }

    #[test]
    fn bad_pages_are_page_invalid() {
        for page in ["0", "-1", "x", ""] {
            assert!(
                matches!(
                    parse_query(&params(&[("page", page)])),
                    Err(ApiError::PageInvalid)
                ),
                "{page}"
            );
        }
    }

    #[test]
    fn bad_limit_order_and_filters_are_field_errors_under_their_names() {
        assert_eq!(field_errors(&[("limit", "0")]), ["limit"]);
        assert_eq!(field_errors(&[("limit", "101")]), ["limit"]);
        for order in ["password:asc", "email:up", "", "createdAt:"] {
            assert_eq!(field_errors(&[("order", order)]), ["order"], "{order}");
        }
        assert_eq!(field_errors(&[("filter[foo]", "x")]), ["filter[foo]"]);
        assert_eq!(
            field_errors(&[("filter[status]", "deleted")]),
            ["filter[status]"]
        );
        assert_eq!(field_errors(&[("filter[uuid]", "nope")]), ["filter[uuid]"]);
        assert_eq!(field_errors(&[("filter[email]", "")]), ["filter[email]"]);
        for short in ["ab*", "*", "é*"] {
            for name in ["email", "firstName", "lastName"] {
                let key = format!("filter[{name}]");
                assert_eq!(field_errors(&[(&key, short)]), [key.as_str()], "{short}");
            }
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(field_errors(&[("filter[email]", &long)]), ["filter[email]"]);
        assert_eq!(
            field_errors(&[("limit", "x"), ("order", "x"), ("filter[x]", "1")]),
            ["filter[x]", "limit", "order"]
        );
    }

    #[test]
    fn a_trailing_star_after_three_characters_is_a_prefix_and_any_other_star_literal() {
        let query = parse_query(&params(&[
            ("filter[email]", "ADA*"),
            ("filter[firstName]", "a*b"),
            ("filter[lastName]", "Zoë*"),
        ]))
        .unwrap();
        assert_eq!(query.filters.email.as_deref(), Some("ADA*"));
        assert_eq!(
            TextMatch::parse("Zoë*").unwrap(),
            TextMatch::Prefix("zoë".into())
        );
        assert_eq!(
            TextMatch::parse("a*b").unwrap(),
            TextMatch::Exact("a*b".into())
        );
    }

    #[test]
    fn a_cursor_replaces_the_page() {
        let query = parse_query(&params(&[("cursor", "abc.def"), ("page", "4")])).unwrap();
        assert_eq!(query.start, Start::Cursor("abc.def".into()));
    }
}

//! Paging rules shared by every list route: `page`, `limit` and sealed `cursor`s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::ApiError;
use crate::domain::{ListStart, StoreError};
use crate::security::crypto;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// `page`: a whole number from 1 (the default). Anything else is "Page is invalid.".
pub fn parse_page(input: Option<&str>) -> Result<u64, ApiError> {
    match input {
        None => Ok(1),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|page| *page >= 1)
            .ok_or(ApiError::PageInvalid),
    }
}

/// `limit`: a whole number from 1 to 100, 20 by default; otherwise a field error.
pub fn parse_limit(input: Option<&str>) -> Result<usize, ApiError> {
    match input {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::field(
                    "limit",
                    format!("Must be a whole number from 1 to {MAX_LIMIT}."),
                )
            }),
    }
}

/// Seals a cursor's position for one query: `scope` names the query (order, filters, limit),
/// and a cursor opens only under the same scope, so it cannot be replayed on another query
/// or forged.
pub fn seal_cursor(key: &[u8], scope: &str, position: &impl Serialize) -> String {
    let payload = URL_SAFE_NO_PAD.encode(json!(position).to_string());
    format!("{payload}.{}", cursor_tag(key, scope, &payload))
}

/// The position sealed in `cursor` for this `scope`; "Page is invalid." otherwise.
pub fn open_cursor<T: DeserializeOwned>(
    key: &[u8],
    scope: &str,
    cursor: &str,
) -> Result<T, ApiError> {
    let (payload, tag) = cursor.split_once('.').ok_or(ApiError::PageInvalid)?;
    if !crypto::constant_time_eq(tag, cursor_tag(key, scope, payload)) {
        return Err(ApiError::PageInvalid);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| ApiError::PageInvalid)?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::PageInvalid)
}

fn cursor_tag(key: &[u8], scope: &str, payload: &str) -> String {
    let mut tag = crypto::hmac_hex(key, &format!("cursor\n{scope}\n{payload}"));
    tag.truncate(32);
    tag
}

/// One page of a list and what its `meta` says.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u64,
    pub limit: usize,
    pub total: u64,
    pub next_cursor: Option<String>,
}

/// Where a page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    Page(u64),
    Cursor(String),
}

/// What a cursor of a keyed list carries: the page it opens and the sort key of the last item
/// before it.
#[derive(Serialize, serde::Deserialize)]
struct KeyedCursor {
    page: u64,
    after: String,
}

/// One page of a list kept in sort-key order in one partition (a user's reports or events):
/// `total` items in all, `fetch(start, n)` reads up to `n` from `start`. A page offset skips,
/// a cursor (sealed under `scope`) resumes after the sort key of the page before it.
pub async fn keyed_page<T, Fut>(
    key: &[u8],
    scope: &str,
    start: &Start,
    limit: usize,
    total: u64,
    sort_key: impl Fn(&T) -> String,
    fetch: impl FnOnce(ListStart, usize) -> Fut,
) -> Result<Page<T>, ApiError>
where
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
{
    let (page, from) = match start {
        Start::Page(page) => (
            *page,
            ListStart::Skip((page - 1).saturating_mul(limit as u64)),
        ),
        Start::Cursor(cursor) => {
            let state: KeyedCursor = open_cursor(key, scope, cursor)?;
            (state.page, ListStart::After(state.after))
        }
    };
    let past_the_end = matches!(from, ListStart::Skip(skip) if skip >= total);
    // One more than asked tells whether another page follows.
    let mut items = if past_the_end {
        Vec::new()
    } else {
        fetch(from, limit + 1).await?
    };
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = match items.last() {
        Some(last) if more => Some(seal_cursor(
            key,
            scope,
            &KeyedCursor {
                page: page.saturating_add(1),
                after: sort_key(last),
            },
        )),
        _ => None,
    };
    Ok(Page {
        items,
        page,
        limit,
        total,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_and_limit_parse_strictly() {
        assert_eq!(parse_page(None).unwrap(), 1);
        assert_eq!(parse_page(Some("3")).unwrap(), 3);
        for bad in ["0", "-1", "1.5", "abc", "", " 2", "99999999999999999999999"] {
            assert!(
                matches!(parse_page(Some(bad)), Err(ApiError::PageInvalid)),
                "{bad}"
            );
        }
        assert_eq!(parse_limit(None).unwrap(), 20);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-5", "ten", ""] {
            match parse_limit(Some(bad)) {
                Err(ApiError::Validation(fields)) => assert!(fields.contains_key("limit")),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}

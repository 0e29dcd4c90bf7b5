//! The DynamoDB adapter: one table, keys as in `docs/data-model.md`, one file per aggregate.
//! This module holds the client, the shared item helpers and the key formats.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, Select, TransactWriteItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::StoreError;
use crate::domain::clock;
use crate::domain::ids::{SessionId, UserId};

mod codes;
mod events;
mod lockouts;
mod passkeys;
mod reports;
mod sessions;
mod tokens;
mod users;

pub use events::put_event;
pub use users::{
    COUNTER_SK, claim_item, counter_items, counter_pk, migration_update, unmigrate, user_item,
};

pub type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStore {
    pub client: Client,
    pub table: String,
    /// What the user listing reads (the benchmark's and the tests' meter).
    pub reads: Arc<ReadMeter>,
}

/// Requests, items read (`ScannedCount`, or items returned by a `GetItem`/`BatchGetItem`) and
/// read capacity consumed by the user listing and counts.
#[derive(Debug, Default)]
pub struct ReadMeter {
    requests: AtomicU64,
    items: AtomicU64,
    /// Thousandths of a read capacity unit.
    capacity_milli: AtomicU64,
}

/// A reading of a [`ReadMeter`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reads {
    pub requests: u64,
    pub items: u64,
    pub capacity: f64,
}

impl ReadMeter {
    fn record(&self, items: u64, capacity: Option<f64>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items, Ordering::Relaxed);
        let milli = (capacity.unwrap_or(0.0) * 1000.0).round() as u64;
        self.capacity_milli.fetch_add(milli, Ordering::Relaxed);
    }

    /// One page of a `Query`: its scanned items and the capacity it consumed.
    fn record_query(&self, output: &aws_sdk_dynamodb::operation::query::QueryOutput) {
        self.record(
            output.scanned_count.max(0) as u64,
            output
                .consumed_capacity
                .as_ref()
                .and_then(|c| c.capacity_units),
        );
    }

    /// What was read since the last `take`, and starts over.
    pub fn take(&self) -> Reads {
        Reads {
            requests: self.requests.swap(0, Ordering::Relaxed),
            items: self.items.swap(0, Ordering::Relaxed),
            capacity: self.capacity_milli.swap(0, Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            reads: Arc::default(),
        }
    }

    /// Puts an item whose stored `version` is still `expected_version` (`None`: that does not
    /// exist yet); `VersionConflict` otherwise.
    pub async fn put_versioned(
        &self,
        item: Item,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected_version {
            Some(version) => request
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(version)),
            None => request.condition_expression("attribute_not_exists(pk)"),
        };
        request
            .send()
            .await
            .map_err(|e| classify(e, StoreError::VersionConflict))?;
        Ok(())
    }

    /// How many items a query matches, following its pages (`Select COUNT`: nothing is
    /// returned but the count).
    pub async fn count(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let output = query
                .clone()
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            total += output.count as u64;
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }

    /// The item at `pk`/`sk` by a strongly consistent read, deserialized.
    pub async fn get_consistent<T: for<'de> Deserialize<'de>>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        output.item.map(from_item).transpose()
    }

    /// The items at `keys` that exist, read consistently in one `BatchGetItem` (asked again
    /// for the keys it leaves unprocessed under load).
    pub(super) async fn batch_get_consistent(
        &self,
        keys: Vec<Item>,
    ) -> Result<Vec<Item>, StoreError> {
        let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(backend)?;
        let mut request = HashMap::from([(self.table.clone(), keys)]);
        let mut found = Vec::new();
        for _ in 0..5 {
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(backend)?;
            found.extend(
                output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default(),
            );
            match output.unprocessed_keys {
                Some(unprocessed) if !unprocessed.is_empty() => request = unprocessed,
                _ => return Ok(found),
            }
        }
        Err(backend("BatchGetItem left keys unprocessed"))
    }

    /// One cheap request, made at cold start so the first invoke finds the TLS connection open.
    pub async fn warm_up(&self) {
        let _ = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key("WARMUP", "WARMUP")))
            .send()
            .await;
    }
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// An error of the adapter as a domain error: an SDK error as [`unavailable_or_backend`] says,
/// anything else (a bad item, a broken invariant) as `Backend`.
pub fn backend(error: impl IntoStoreError) -> StoreError {
    error.into_store_error()
}

/// What [`backend`] takes.
pub trait IntoStoreError {
    fn into_store_error(self) -> StoreError;
}

impl<E, R> IntoStoreError for SdkError<E, R>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    fn into_store_error(self) -> StoreError {
        unavailable_or_backend(&self)
    }
}

impl IntoStoreError for &str {
    fn into_store_error(self) -> StoreError {
        StoreError::Backend(self.to_owned())
    }
}

impl IntoStoreError for String {
    fn into_store_error(self) -> StoreError {
        StoreError::Backend(self)
    }
}

impl IntoStoreError for serde_dynamo::Error {
    fn into_store_error(self) -> StoreError {
        StoreError::Backend(self.to_string())
    }
}

impl IntoStoreError for time::error::Parse {
    fn into_store_error(self) -> StoreError {
        StoreError::Backend(self.to_string())
    }
}

impl IntoStoreError for base64::DecodeError {
    fn into_store_error(self) -> StoreError {
        StoreError::Backend(self.to_string())
    }
}

impl IntoStoreError for aws_sdk_dynamodb::error::BuildError {
    fn into_store_error(self) -> StoreError {
        StoreError::Backend(self.to_string())
    }
}

/// The HTTP status of a raw response, when the SDK got one.
pub trait HttpStatus {
    fn http_status(&self) -> u16;
}

impl HttpStatus for aws_sdk_dynamodb::config::http::HttpResponse {
    fn http_status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Error codes DynamoDB (and the SDK's retry classifier) treat as throttling.
const THROTTLING_CODES: [&str; 5] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TooManyRequestsException",
];

/// `Unavailable` when the table could not be reached, timed out, throttled or failed on its
/// side (the SDK has retried each of these with backoff already); `Backend` otherwise.
pub fn unavailable_or_backend<E, R>(error: &SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    let cause = aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string();
    let unavailable = match error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => true,
        SdkError::ResponseError(response) => response.raw().http_status() >= 500,
        SdkError::ServiceError(service) => {
            service.raw().http_status() >= 500
                || service
                    .err()
                    .code()
                    .is_some_and(|code| THROTTLING_CODES.contains(&code))
        }
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(cause)
    } else {
        StoreError::Backend(cause)
    }
}

/// Turns an SDK error into a domain error, with `ConditionalCheckFailed` as `conflict`.
pub fn classify<E, R>(error: SdkError<E, R>, conflict: StoreError) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    let code = error
        .as_service_error()
        .and_then(|e| e.code())
        .unwrap_or("");
    if code == "ConditionalCheckFailedException" {
        conflict
    } else {
        unavailable_or_backend(&error)
    }
}

pub fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(backend)
}

pub fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(backend)
}

fn user_pk(id: UserId) -> String {
    format!("USER#{id}")
}

fn email_pk(email_key: &str) -> String {
    format!("EMAIL#{email_key}")
}

fn session_pk(id: SessionId) -> String {
    format!("SESSION#{id}")
}

fn ts(at: OffsetDateTime) -> String {
    clock::format(at)
}

fn parse_ts(text: &str) -> Result<OffsetDateTime, StoreError> {
    clock::parse(text).ok_or_else(|| StoreError::Backend(format!("bad timestamp {text:?}")))
}

fn put(
    table: &str,
    item: Item,
    condition: &str,
    values: Option<Item>,
) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_values(values)
                .build()
                .map_err(backend)?,
        )
        .build())
}

fn transaction_error(
    error: SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
    reasons_to_error: impl Fn(usize) -> StoreError,
) -> StoreError {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
        error.as_service_error()
    {
        let reasons = cancel.cancellation_reasons();
        if let Some(index) = reasons
            .iter()
            .position(|r| r.code() == Some("ConditionalCheckFailed"))
        {
            return reasons_to_error(index);
        }
        // Another transaction touched the same items at the same moment: the caller sees a
        // conflict, which for a registration means someone else got the email first.
        if reasons
            .iter()
            .any(|r| r.code() == Some("TransactionConflict"))
        {
            return reasons_to_error(usize::MAX);
        }
    }
    unavailable_or_backend(&error)
}

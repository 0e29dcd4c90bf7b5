//! Records, during integration tests, every AWS request a function makes as the IAM actions it
//! needs (read just before the request is serialized, once its operation is known), so `cargo xtask test` can hold them against what `template.yaml` allows that
//! function. A request is attributed to the function serving the request it belongs to
//! ([`crate::telemetry::FUNCTION`]); requests made outside any function (test setup) are not
//! recorded.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::scan::ScanInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// The file the records are appended to, one `function action` per line.
pub const RECORD_FILE_ENV: &str = "IAM_RECORD_FILE";

/// The interceptor every client of the test app carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recorder;

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "IamRecorder"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(function) = crate::telemetry::FUNCTION.try_with(|function| *function) else {
            return Ok(());
        };
        if let Some(metadata) = cfg.load::<Metadata>() {
            let input = context.input();
            let transaction = input.downcast_ref::<TransactWriteItemsInput>();
            let index = input
                .downcast_ref::<QueryInput>()
                .and_then(|query| query.index_name())
                .or_else(|| {
                    input
                        .downcast_ref::<ScanInput>()
                        .and_then(|scan| scan.index_name())
                });
            REQUESTS
                .lock()
                .unwrap()
                .push(format!("{}:{}", metadata.service(), metadata.name()));
            for action in actions(metadata.service(), metadata.name(), transaction, index) {
                record(function, &action);
                OPERATIONS.lock().unwrap().push(action);
            }
        }
        Ok(())
    }
}

/// Every action of the requests made inside a function, in order, since [`take_operations`]
/// was last called (test processes run one test each, so these are the test's own).
static OPERATIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The actions (`dynamodb:GetItem`, `ses:SendEmail`, …) of every AWS request made while
/// serving requests since the last call, in order: what a path costs, for tests that compare
/// two paths.
pub fn take_operations() -> Vec<String> {
    std::mem::take(&mut *OPERATIONS.lock().unwrap())
}

/// Every request made inside a function, as `Service:Operation` (`DynamoDB:GetItem`,
/// `DynamoDB:TransactWriteItems`, …), one per request, since [`take_requests`] was last called.
static REQUESTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The AWS requests made while serving requests since the last call, one entry per request
/// (a transaction is one): what a route costs in round trips, for request budgets.
pub fn take_requests() -> Vec<String> {
    std::mem::take(&mut *REQUESTS.lock().unwrap())
}

/// The IAM actions one request needs. `TransactWriteItems` has no action of its own: each of
/// its items is authorised by the action of its kind. A query or scan of an index is
/// authorised on the index's ARN, so it is recorded as `dynamodb:Query index/<name>`.
fn actions(
    service: &str,
    operation: &str,
    transaction: Option<&TransactWriteItemsInput>,
    index: Option<&str>,
) -> Vec<String> {
    let prefix = service.to_ascii_lowercase();
    match transaction {
        Some(input) if operation == "TransactWriteItems" => input
            .transact_items()
            .iter()
            .flat_map(|item| {
                [
                    item.put().map(|_| "PutItem"),
                    item.update().map(|_| "UpdateItem"),
                    item.delete().map(|_| "DeleteItem"),
                    item.condition_check().map(|_| "ConditionCheckItem"),
                ]
            })
            .flatten()
            .map(|action| format!("{prefix}:{action}"))
            .collect(),
        _ => match index {
            Some(index) => vec![format!("{prefix}:{operation} index/{index}")],
            None => vec![format!("{prefix}:{operation}")],
        },
    }
}

fn record(function: &str, action: &str) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Ok(path) = std::env::var(RECORD_FILE_ENV) else {
        return;
    };
    let line = format!("{function} {action}\n");
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap();
    if seen.insert(line.clone()) {
        // One short append per new pair: lines from parallel test processes don't interleave.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(error) = appended {
            panic!("cannot record AWS actions in {path}: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

    #[test]
    fn a_transaction_needs_the_action_of_each_item_kind() {
        let put = Put::builder()
            .table_name("t")
            .set_item(Some(Default::default()))
            .build()
            .unwrap();
        let delete = Delete::builder()
            .table_name("t")
            .set_key(Some(Default::default()))
            .build()
            .unwrap();
        let input = TransactWriteItemsInput::builder()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .build()
            .unwrap();
        assert_eq!(
            actions("DynamoDB", "TransactWriteItems", Some(&input), None),
            ["dynamodb:PutItem", "dynamodb:DeleteItem"]
        );
        assert_eq!(actions("SES", "SendEmail", None, None), ["ses:SendEmail"]);
    }

    #[test]
    fn a_query_of_an_index_needs_the_action_on_that_index() {
        assert_eq!(
            actions("DynamoDB", "Query", None, Some("gsi1")),
            ["dynamodb:Query index/gsi1"]
        );
        assert_eq!(actions("DynamoDB", "Query", None, None), ["dynamodb:Query"]);
    }
}

//! Storage adapters of the domain's ports: `dynamo` on one DynamoDB table, `memory` in
//! process for fast unit tests, `s3` for report files. `contract` suites run against both
//! store adapters, so they behave the same.

pub mod dynamo;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;

#[cfg(any(test, feature = "testkit"))]
pub mod contract;

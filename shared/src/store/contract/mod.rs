//! One contract suite per storage port, run against the in-memory adapter (unit tests) and
//! the DynamoDB adapter (integration tests on DynamoDB Local).

pub mod codes;
pub mod events;
pub mod lockouts;
pub mod passkeys;
pub mod reports;
pub mod sessions;
pub mod tokens;
pub mod users;

//! The domain crate shared by every route group: types built by parsing, the one error type,
//! storage ports with DynamoDB and in-memory adapters, tokens, hashing and the services.

pub mod app;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod email;
pub mod error;
pub mod http;
pub mod ids;
pub mod listing;
pub mod lockout;
pub mod mail;
pub mod password;
pub mod phone;
pub mod recovery;
pub mod reports;
pub mod secrets;
pub mod session;
pub mod sessions;
pub mod sms;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod two_factor;
pub mod user;
pub mod users;
pub mod verification;

pub use app::{Access, App, Principal};
pub use error::ApiError;
#[cfg(feature = "localstack")]
pub mod localstack;
#[cfg(feature = "testkit")]
pub mod testkit;

//! The domain crate shared by every route group. Layers, imports pointing down only:
//! `http` and `app` (composition root) → `service` → `domain` ← `store`, `notify`;
//! `security` is used by all. See `docs/architecture.md`.

pub mod app;
pub mod aws;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod notify;
pub mod secrets;
pub mod security;
pub mod service;
pub mod store;
pub mod telemetry;

pub use app::{Access, App, Context, MailContext, Principal, ReportContext, SmsContext};
pub use error::ApiError;
#[cfg(feature = "localstack")]
pub mod localstack;
#[cfg(feature = "testkit")]
pub mod testkit;

//! Adapters of the domain's notification ports: SES for mail, SNS for SMS, and in-memory
//! ones for unit tests. Each AWS adapter is behind the crate feature of its SDK, so a
//! function links only the clients its routes use.

pub mod memory;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(feature = "sns")]
pub mod sns;

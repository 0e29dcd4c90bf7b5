//! The domain: entities, the rules that are theirs alone, and the ports (traits) through
//! which services reach storage and notifications. Nothing here knows AWS or HTTP.

pub mod clock;
pub mod code;
pub mod email;
pub mod email_token;
pub mod ids;
pub mod lockout;
pub mod mail;
pub mod passkey;
pub mod phone;
pub mod report;
pub mod security_event;
pub mod session;
pub mod sms;
pub mod user;

/// Where a page of a list kept in sort-key order starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListStart {
    /// Skip this many items (page-based listing).
    Skip(u64),
    /// After the item with this sort key (cursor-based listing).
    After(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("email already in use")]
    EmailTaken,
    #[error("version conflict")]
    VersionConflict,
    #[error("passkey credential already registered")]
    CredentialTaken,
    #[error("too many passkeys")]
    TooManyPasskeys,
    #[error("not found")]
    NotFound,
    #[error("storage backend: {0}")]
    Backend(String),
    /// The storage did not answer, or throttled, even after the SDK's retries: worth retrying
    /// later (503 with `Retry-After`), never a 500.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

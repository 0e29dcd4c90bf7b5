//! Storage ports. Services see only these traits; `dynamo` implements them on one DynamoDB
//! table and `memory` in process for fast unit tests. `contract` tests run against both.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::{SessionId, UserId};
use crate::session::Session;
use crate::user::{Status, User};

pub mod codes;
pub mod dynamo;
pub mod memory;
pub mod reports;

pub use reports::{ReportStart, ReportStore};

#[cfg(any(test, feature = "testkit"))]
pub mod code_contract;
#[cfg(any(test, feature = "testkit"))]
pub mod contract;
#[cfg(any(test, feature = "testkit"))]
pub mod report_contract;
#[cfg(any(test, feature = "testkit"))]
pub mod token_contract;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("email already in use")]
    EmailTaken,
    #[error("version conflict")]
    VersionConflict,
    #[error("not found")]
    NotFound,
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Which live users an index read walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserPartition {
    /// Every user that is not deleted.
    Live,
    /// Live users with one status.
    Status(Status),
}

impl UserPartition {
    pub fn contains(self, user: &User) -> bool {
        match self {
            UserPartition::Live => user.status != Status::Deleted,
            UserPartition::Status(status) => user.status == status,
        }
    }
}

/// The index sort key of a user: creation time, then uuid to break ties.
pub fn user_sort_key(user: &User) -> String {
    format!("{}#{}", crate::clock::format(user.created_at), user.id)
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user and claims its email, in one transaction.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// Any user, deleted ones included: callers decide what a deleted user means.
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The live user holding this lowercased email.
    async fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError>;

    /// Replaces `previous` by `user` if the stored version is still `previous.version`
    /// (`user.version` must be one more). In the same transaction it moves the email claim
    /// when the email changed, releases it when the user becomes deleted, and moves
    /// `keep_session` to the user's session epoch.
    async fn save_user(
        &self,
        user: &User,
        previous: &User,
        keep_session: Option<SessionId>,
    ) -> Result<(), StoreError>;

    async fn count_users(&self, partition: UserPartition) -> Result<u64, StoreError>;

    /// Users of a partition in sort-key order, starting after `after`, at most `limit`.
    async fn list_users(
        &self,
        partition: UserPartition,
        after: Option<&str>,
        limit: Option<usize>,
        ascending: bool,
    ) -> Result<Vec<User>, StoreError>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;

    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError>;

    /// Replaces the session if its stored version is still `expected_version`
    /// (`VersionConflict` otherwise, `NotFound` if it is gone).
    async fn save_session(
        &self,
        session: &Session,
        expected_version: u64,
    ) -> Result<(), StoreError>;

    /// Deletes the session; `false` if there was none.
    async fn delete_session(&self, id: SessionId) -> Result<bool, StoreError>;

    /// The user and the session of an access token, in one read.
    async fn get_user_and_session(
        &self,
        user: UserId,
        session: SessionId,
    ) -> Result<(Option<User>, Option<Session>), StoreError>;
}

/// Failed-login bookkeeping for one email.
#[derive(Clone, Debug, PartialEq)]
pub struct Lockout {
    pub email_key: String,
    pub failures: u32,
    pub window_start: OffsetDateTime,
    pub last_failure_at: OffsetDateTime,
    pub locked_until: Option<OffsetDateTime>,
    /// Length of the latest lock; 0 before the first.
    pub lock_secs: i64,
    pub version: u64,
}

#[async_trait]
pub trait LockoutStore: Send + Sync {
    async fn get_lockout(&self, email_key: &str) -> Result<Option<Lockout>, StoreError>;

    /// Writes the lockout if the stored one still has `expected_version`
    /// (`None`: if there is none). `VersionConflict` otherwise.
    async fn put_lockout(
        &self,
        lockout: &Lockout,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;

    async fn clear_lockout(&self, email_key: &str) -> Result<(), StoreError>;
}

/// What an emailed single-use token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Password recovery (1 h).
    Recovery,
    /// Email verification (24 h).
    Verification,
}

/// An emailed single-use token, stored only as the SHA-256 of the token.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailToken {
    pub kind: TokenKind,
    pub hash: String,
    pub user_id: UserId,
    /// The lowercased address the token was mailed to.
    pub email_key: String,
    /// The user's session epoch at issue: a recovery token dies with the user's sessions.
    pub session_epoch: u64,
    pub expires_at: OffsetDateTime,
}

impl EmailToken {
    /// The stored form of a token from a link: its SHA-256. `None` for input that cannot be
    /// one of ours (empty, or far longer than the 43 characters we mail), sparing a read.
    pub fn hash_of(token: &str) -> Option<String> {
        (!token.is_empty() && token.len() <= 128).then(|| crate::crypto::sha256_hex(token))
    }
}

/// When recovery mails went to one address (the cap counts those of the last hour).
#[derive(Clone, Debug, PartialEq)]
pub struct MailLog {
    pub email_key: String,
    pub sent_at: Vec<OffsetDateTime>,
    pub version: u64,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn put_token(&self, token: &EmailToken) -> Result<(), StoreError>;

    /// The token, expired or not: TTL deletion is lazy, so callers check `expires_at`.
    async fn get_token(
        &self,
        kind: TokenKind,
        hash: &str,
    ) -> Result<Option<EmailToken>, StoreError>;

    /// Uses the token up and saves `user` over `previous`, in one transaction: the token is
    /// deleted only if it exists and has not expired at `now` (`NotFound` otherwise), and the
    /// user is saved only if its stored version is still `previous.version` (`VersionConflict`
    /// otherwise). The change must keep the email and the status (no email claim moves).
    async fn redeem_token(
        &self,
        kind: TokenKind,
        hash: &str,
        now: OffsetDateTime,
        user: &User,
        previous: &User,
    ) -> Result<(), StoreError>;

    async fn get_mail_log(&self, email_key: &str) -> Result<Option<MailLog>, StoreError>;

    /// Writes the log if the stored one still has `expected_version` (`None`: if there is
    /// none). `VersionConflict` otherwise.
    async fn put_mail_log(
        &self,
        log: &MailLog,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;
}

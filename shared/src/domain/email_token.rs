//! Emailed single-use tokens (recovery, verification), the mail log behind the caps, and
//! their port.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use super::ids::UserId;
use super::security_event::SecurityEvent;
use super::user::User;

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
        (!token.is_empty() && token.len() <= 128)
            .then(|| crate::security::crypto::sha256_hex(token))
    }
}

/// When recovery mails went to one address (the cap counts those of the last hour).
#[derive(Clone, Debug, PartialEq)]
pub struct MailLog {
    pub email_key: String,
    pub sent_at: Vec<OffsetDateTime>,
    pub version: u64,
}

/// When verification mails went to one user and to one address, as read (the caps count the
/// last hour). A version is that of the stored log, 0 when there is none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerificationLogs {
    pub by_user: Vec<OffsetDateTime>,
    pub user_version: u64,
    pub by_address: Vec<OffsetDateTime>,
    pub address_version: u64,
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
    /// `events` are recorded in the same transaction.
    async fn redeem_token(
        &self,
        kind: TokenKind,
        hash: &str,
        now: OffsetDateTime,
        user: &User,
        previous: &User,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError>;

    /// The verification mail logs of `user` and of the address `email_key`.
    async fn get_verification_logs(
        &self,
        user: UserId,
        email_key: &str,
    ) -> Result<VerificationLogs, StoreError>;

    /// Stores a verification token for `token.user_id` and `token.email_key` with both logs
    /// as given in `logs`, in one transaction: only if each stored log still has the version
    /// in `logs` (each is saved one version later), else `VersionConflict` and nothing is
    /// written.
    async fn put_verification_token(
        &self,
        token: &EmailToken,
        logs: &VerificationLogs,
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

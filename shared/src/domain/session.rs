//! Login sessions, their refresh-token rotation, and their port `SessionStore`.

use time::{Duration, OffsetDateTime};

use crate::domain::StoreError;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::user::User;
use async_trait::async_trait;

/// Sessions end after this long without a refresh.
pub const IDLE_LIFETIME: Duration = Duration::days(30);
/// How long a rotated-out refresh token is still accepted.
pub const REFRESH_GRACE: Duration = Duration::seconds(30);
/// How many used refresh-token hashes are remembered for reuse detection.
pub const USED_HASHES_KEPT: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Logged in.
    Full,
    /// Password checked; waiting for the SMS code.
    TwoFactor,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GraceHash {
    pub hash: String,
    pub until: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub epoch: u64,
    pub stage: Stage,
    /// SHA-256 of the current refresh token (none while waiting for 2FA).
    pub refresh_hash: Option<String>,
    pub grace_hashes: Vec<GraceHash>,
    pub used_hashes: Vec<String>,
    pub version: u64,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub device_token: Option<String>,
    pub platform: Option<String>,
    pub app_version: Option<String>,
    pub build_number: Option<u64>,
}

impl Session {
    pub fn new(user_id: UserId, epoch: u64, stage: Stage, now: OffsetDateTime) -> Self {
        Self {
            id: SessionId::new(),
            user_id,
            epoch,
            stage,
            refresh_hash: None,
            grace_hashes: Vec::new(),
            used_hashes: Vec::new(),
            version: 0,
            created_at: now,
            last_used_at: now,
            device_token: None,
            platform: None,
            app_version: None,
            build_number: None,
        }
    }

    pub fn expires_at(&self) -> OffsetDateTime {
        self.last_used_at + IDLE_LIFETIME
    }

    /// Live for this user at `now`: same epoch and not idle too long. A 2FA-stage session
    /// lives only as long as its 2FA token.
    pub fn is_live(&self, user_epoch: u64, now: OffsetDateTime) -> bool {
        let expires = match self.stage {
            Stage::Full => self.expires_at(),
            Stage::TwoFactor => {
                self.created_at + Duration::seconds(crate::security::jwt::TWO_FACTOR_TOKEN_SECS)
            }
        };
        self.epoch == user_epoch && now < expires
    }

    /// Issues a new refresh token, moving the current one into the grace list.
    /// Returns the new token (shown once, never stored).
    pub fn rotate(&mut self, now: OffsetDateTime) -> String {
        let token = crate::security::crypto::random_token();
        if let Some(previous) = self.refresh_hash.take() {
            self.grace_hashes.push(GraceHash {
                hash: previous.clone(),
                until: now + REFRESH_GRACE,
            });
            self.used_hashes.push(previous);
        }
        self.grace_hashes.retain(|grace| grace.until > now);
        let excess = self.used_hashes.len().saturating_sub(USED_HASHES_KEPT);
        self.used_hashes.drain(..excess);
        self.refresh_hash = Some(crate::security::crypto::sha256_hex(&token));
        self.last_used_at = now;
        token
    }

    /// How a presented refresh token relates to this session.
    pub fn check_refresh(&self, token: &str, now: OffsetDateTime) -> RefreshCheck {
        let presented = crate::security::crypto::sha256_hex(token);
        let eq = |stored: &str| crate::security::crypto::constant_time_eq(stored, &presented);
        if self.refresh_hash.as_deref().is_some_and(eq) {
            RefreshCheck::Current
        } else if self
            .grace_hashes
            .iter()
            .any(|grace| grace.until > now && eq(&grace.hash))
        {
            RefreshCheck::InGrace
        } else if self.used_hashes.iter().any(|used| eq(used)) {
            RefreshCheck::Reused
        } else {
            RefreshCheck::Unknown
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshCheck {
    Current,
    InGrace,
    /// A rotated-out token after its grace window: treat as theft.
    Reused,
    Unknown,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_previous_token_for_the_grace_window_only() {
        let now = OffsetDateTime::now_utc();
        let mut session = Session::new(UserId::new(), 0, Stage::Full, now);
        let first = session.rotate(now);
        assert_eq!(session.check_refresh(&first, now), RefreshCheck::Current);
        let second = session.rotate(now);
        assert_eq!(session.check_refresh(&second, now), RefreshCheck::Current);
        assert_eq!(
            session.check_refresh(&first, now + Duration::seconds(29)),
            RefreshCheck::InGrace
        );
        assert_eq!(
            session.check_refresh(&first, now + Duration::seconds(31)),
            RefreshCheck::Reused
        );
        assert_eq!(session.check_refresh("made-up", now), RefreshCheck::Unknown);
    }

    #[test]
    fn sessions_die_with_a_new_epoch_or_after_idle_time() {
        let now = OffsetDateTime::now_utc();
        let session = Session::new(UserId::new(), 3, Stage::Full, now);
        assert!(session.is_live(3, now));
        assert!(!session.is_live(4, now));
        assert!(!session.is_live(3, now + IDLE_LIFETIME));
    }
}

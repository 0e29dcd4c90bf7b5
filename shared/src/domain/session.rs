//! Login sessions, their refresh-token rotation, and their port `SessionStore`.

use time::{Duration, OffsetDateTime};

use crate::domain::StoreError;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::User;
use async_trait::async_trait;

/// Sessions end after this long without a refresh.
pub const IDLE_LIFETIME: Duration = Duration::days(30);
/// How long a rotated-out refresh token is still accepted.
pub const REFRESH_GRACE: Duration = Duration::seconds(30);
/// How many used refresh-token hashes are remembered for reuse detection.
pub const USED_HASHES_KEPT: usize = 20;
/// At most this many live full sessions per user: a login past it ends the least recently
/// used.
pub const MAX_LIVE_SESSIONS: usize = 100;
/// The stored `User-Agent` is cut to this many characters.
pub const USER_AGENT_MAX_CHARS: usize = 256;

/// A `User-Agent` header as a session keeps it: at most [`USER_AGENT_MAX_CHARS`] characters,
/// `None` when blank.
pub fn clip_user_agent(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    (!trimmed.is_empty()).then(|| trimmed.chars().take(USER_AGENT_MAX_CHARS).collect())
}

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
    /// The `User-Agent` of the login or the last refresh that sent one.
    pub user_agent: Option<String>,
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
            user_agent: None,
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

    /// Issues a new random refresh token (the first of a session), moving the current one
    /// into the grace list. Returns the new token (shown once, never stored).
    pub fn rotate(&mut self, now: OffsetDateTime) -> String {
        let token = crate::security::crypto::random_token();
        self.rotate_to(&token, now);
        token
    }

    /// Makes `token` the current refresh token (only its hash is kept), moving the current
    /// one into the grace list.
    pub fn rotate_to(&mut self, token: &str, now: OffsetDateTime) {
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
        self.refresh_hash = Some(crate::security::crypto::sha256_hex(token));
        self.last_used_at = now;
    }

    /// The current refresh token, recovered from a token of the grace list: each refresh
    /// token after the first is `successor` of the one it replaced (a keyed derivation, see
    /// `service::sessions`), so walking forward from the presented token through the grace
    /// list reaches the current one. `None` when the chain does not lead there.
    pub fn current_from_grace(
        &self,
        token: &str,
        successor: impl Fn(&str) -> String,
        now: OffsetDateTime,
    ) -> Option<String> {
        let hash_of = crate::security::crypto::sha256_hex;
        let eq = |a: &str, b: &str| crate::security::crypto::constant_time_eq(a, b);
        let current = self.refresh_hash.as_deref()?;
        let mut candidate = successor(token);
        for _ in 0..=self.grace_hashes.len() {
            let hash = hash_of(&candidate);
            if eq(current, &hash) {
                return Some(candidate);
            }
            let in_grace = self
                .grace_hashes
                .iter()
                .any(|grace| grace.until > now && eq(&grace.hash, &hash));
            if !in_grace {
                return None;
            }
            candidate = successor(&candidate);
        }
        None
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

    /// Every stored session of the user, live or not and at any stage, most recently used
    /// first: one query of the user's sessions, never a scan.
    async fn list_user_sessions(&self, user: UserId) -> Result<Vec<Session>, StoreError>;

    /// Deletes the session; `false` if there was none.
    async fn delete_session(&self, id: SessionId) -> Result<bool, StoreError>;

    /// [`SessionStore::create_session`], recording `events` in the same transaction.
    async fn create_session_recording(
        &self,
        session: &Session,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError>;

    /// [`SessionStore::create_session_recording`] of a login whose password was right,
    /// clearing the lockout of `email_key` and deleting `withdrawn` (the events recorded when
    /// the attempt was reserved) in the same transaction. `VersionConflict` when a concurrent
    /// transaction got in the way.
    async fn create_login_session(
        &self,
        session: &Session,
        events: &[SecurityEvent],
        email_key: &str,
        withdrawn: &[SecurityEvent],
    ) -> Result<(), StoreError>;

    /// [`SessionStore::save_session`], recording `events` in the same transaction.
    async fn save_session_recording(
        &self,
        session: &Session,
        expected_version: u64,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError>;

    /// Deletes the session and records `events`, in one transaction; `false`, and nothing
    /// recorded, if there was no session.
    async fn delete_session_recording(
        &self,
        id: SessionId,
        events: &[SecurityEvent],
    ) -> Result<bool, StoreError>;

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
    fn a_token_in_grace_leads_to_the_current_one_through_the_chain() {
        let now = OffsetDateTime::now_utc();
        let successor = |token: &str| crate::security::crypto::hmac_token(b"key", token);
        let mut session = Session::new(UserId::new(), 0, Stage::Full, now);
        let first = session.rotate(now);
        let second = successor(&first);
        session.rotate_to(&second, now);
        let third = successor(&second);
        session.rotate_to(&third, now);
        for presented in [&first, &second] {
            assert_eq!(
                session.current_from_grace(presented, successor, now),
                Some(third.clone())
            );
        }
        let later = now + REFRESH_GRACE + Duration::seconds(1);
        assert_eq!(session.current_from_grace(&first, successor, later), None);
        assert_eq!(session.current_from_grace("made-up", successor, now), None);
    }

    #[test]
    fn user_agents_are_kept_to_256_characters() {
        assert_eq!(clip_user_agent("  "), None);
        assert_eq!(clip_user_agent(" Kuri/1.2 ").as_deref(), Some("Kuri/1.2"));
        let long = "é".repeat(300);
        assert_eq!(clip_user_agent(&long).unwrap().chars().count(), 256);
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

//! Security events: what happened to an account, kept 365 days for its owner and customer
//! service to read (`GET /users/{uuid}/security-events`). An event holds no secret: no password,
//! code, token or full phone number, only what happened, when, from where and by whom.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::ids::{EventId, SessionId, UserId};
use super::user::{Status, User};
use super::{ListStart, StoreError};

/// How long an event is kept.
pub const RETENTION: Duration = Duration::days(365);
/// The longest `User-Agent` kept, in characters (API.md: at most 256).
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// The types of API.md, exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "user.registered")]
    UserRegistered,
    #[serde(rename = "login.succeeded")]
    LoginSucceeded,
    #[serde(rename = "login.failed")]
    LoginFailed,
    #[serde(rename = "login.locked")]
    LoginLocked,
    #[serde(rename = "session.ended")]
    SessionEnded,
    #[serde(rename = "sessions.ended")]
    SessionsEnded,
    #[serde(rename = "refresh.reuse_detected")]
    RefreshReuseDetected,
    #[serde(rename = "password.changed")]
    PasswordChanged,
    #[serde(rename = "password.reset")]
    PasswordReset,
    #[serde(rename = "email.changed")]
    EmailChanged,
    #[serde(rename = "email.verified")]
    EmailVerified,
    #[serde(rename = "two_factor.enabled")]
    TwoFactorEnabled,
    #[serde(rename = "two_factor.disabled")]
    TwoFactorDisabled,
    #[serde(rename = "totp.enabled")]
    TotpEnabled,
    #[serde(rename = "totp.disabled")]
    TotpDisabled,
    #[serde(rename = "recovery_codes.generated")]
    RecoveryCodesGenerated,
    #[serde(rename = "recovery_code.used")]
    RecoveryCodeUsed,
    #[serde(rename = "passkey.added")]
    PasskeyAdded,
    #[serde(rename = "passkey.removed")]
    PasskeyRemoved,
    #[serde(rename = "status.changed")]
    StatusChanged,
    #[serde(rename = "roles.changed")]
    RolesChanged,
    #[serde(rename = "user.deleted")]
    UserDeleted,
}

impl EventType {
    pub const ALL: [EventType; 22] = [
        Self::UserRegistered,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginLocked,
        Self::SessionEnded,
        Self::SessionsEnded,
        Self::RefreshReuseDetected,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::EmailChanged,
        Self::EmailVerified,
        Self::TwoFactorEnabled,
        Self::TwoFactorDisabled,
        Self::TotpEnabled,
        Self::TotpDisabled,
        Self::RecoveryCodesGenerated,
        Self::RecoveryCodeUsed,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::StatusChanged,
        Self::RolesChanged,
        Self::UserDeleted,
    ];

    /// The name API.md gives the type (`user.registered`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "user.registered",
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::LoginLocked => "login.locked",
            Self::SessionEnded => "session.ended",
            Self::SessionsEnded => "sessions.ended",
            Self::RefreshReuseDetected => "refresh.reuse_detected",
            Self::PasswordChanged => "password.changed",
            Self::PasswordReset => "password.reset",
            Self::EmailChanged => "email.changed",
            Self::EmailVerified => "email.verified",
            Self::TwoFactorEnabled => "two_factor.enabled",
            Self::TwoFactorDisabled => "two_factor.disabled",
            Self::TotpEnabled => "totp.enabled",
            Self::TotpDisabled => "totp.disabled",
            Self::RecoveryCodesGenerated => "recovery_codes.generated",
            Self::RecoveryCodeUsed => "recovery_code.used",
            Self::PasskeyAdded => "passkey.added",
            Self::PasskeyRemoved => "passkey.removed",
            Self::StatusChanged => "status.changed",
            Self::RolesChanged => "roles.changed",
            Self::UserDeleted => "user.deleted",
        }
    }
}

/// Who caused an event: the user themself or a csrAdmin acting on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: UserId,
    pub admin: bool,
}

/// Who caused a change and from which session: what its events record beside their type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cause {
    pub actor: Option<Actor>,
    pub session: Option<SessionId>,
}

impl Cause {
    /// A change made by `actor` (a csrAdmin when `admin`) from `session`.
    pub fn by(actor: UserId, admin: bool, session: SessionId) -> Self {
        Self {
            actor: Some(Actor { id: actor, admin }),
            session: Some(session),
        }
    }

    /// A change the user made themself outside any session: with a mailed link, or a login
    /// that is not one yet.
    pub fn user(id: UserId) -> Self {
        Self {
            actor: Some(Actor { id, admin: false }),
            session: None,
        }
    }

    /// The events of a change from `previous` to `next` of one user, made now.
    pub fn events(&self, previous: &User, next: &User, now: OffsetDateTime) -> Vec<SecurityEvent> {
        // A microsecond apart, so that they list in the order they happened.
        changes(previous, next)
            .into_iter()
            .zip(0..)
            .map(|(kind, i)| self.event(next.id, kind, now + Duration::microseconds(i)))
            .collect()
    }

    /// One event of `user` now, with this cause.
    pub fn event(&self, user: UserId, kind: EventType, now: OffsetDateTime) -> SecurityEvent {
        SecurityEvent {
            session_id: self.session,
            actor: self.actor,
            ..SecurityEvent::new(user, kind, now)
        }
    }
}

/// What a save from `previous` to `next` did, as event types, in the order they happened.
/// A deletion is `user.deleted` alone (its ended sessions and removed factors go with it).
pub fn changes(previous: &User, next: &User) -> Vec<EventType> {
    if next.status == Status::Deleted {
        return if previous.status == Status::Deleted {
            Vec::new()
        } else {
            vec![EventType::UserDeleted]
        };
    }
    let mut kinds = Vec::new();
    if next.email_key() != previous.email_key() {
        kinds.push(EventType::EmailChanged);
    }
    if next.email_verified && !previous.email_verified {
        kinds.push(EventType::EmailVerified);
    }
    if next.password_hash != previous.password_hash {
        kinds.push(EventType::PasswordChanged);
    }
    // `two_factor.*` is any second factor: the first one active, or the last one gone.
    if next.totp_enabled() && !previous.totp_enabled() {
        kinds.push(EventType::TotpEnabled);
    }
    if next.two_factor_enabled() && !previous.two_factor_enabled() {
        kinds.push(EventType::TwoFactorEnabled);
    }
    if !next.totp_enabled() && previous.totp_enabled() {
        kinds.push(EventType::TotpDisabled);
    }
    if !next.two_factor_enabled() && previous.two_factor_enabled() {
        kinds.push(EventType::TwoFactorDisabled);
    }
    if next.roles != previous.roles {
        kinds.push(EventType::RolesChanged);
    }
    if next.status != previous.status {
        kinds.push(EventType::StatusChanged);
    }
    if next.session_epoch != previous.session_epoch {
        kinds.push(EventType::SessionsEnded);
    }
    kinds
}

/// Where the request that caused an event came from, as the API saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl Origin {
    pub fn new(ip_address: Option<&str>, user_agent: Option<&str>) -> Self {
        Self {
            ip_address: ip_address.filter(|ip| !ip.is_empty()).map(str::to_owned),
            user_agent: user_agent
                .filter(|agent| !agent.is_empty())
                .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect()),
        }
    }

    /// The origin of the request being served (set by `http::serve`), or none outside one.
    pub fn current() -> Self {
        ORIGIN.try_with(Clone::clone).unwrap_or_default()
    }
}

tokio::task_local! {
    /// The origin of the request being served: events record it without every service
    /// passing it along.
    pub static ORIGIN: Origin;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityEvent {
    pub id: EventId,
    pub user_id: UserId,
    pub kind: EventType,
    pub created_at: OffsetDateTime,
    pub session_id: Option<SessionId>,
    pub origin: Origin,
    pub actor: Option<Actor>,
}

impl SecurityEvent {
    /// An event of `user` now, from the request being served.
    pub fn new(user_id: UserId, kind: EventType, now: OffsetDateTime) -> Self {
        Self {
            id: EventId::new(),
            user_id,
            kind,
            created_at: now,
            session_id: None,
            origin: Origin::current(),
            actor: None,
        }
    }

    pub fn session(mut self, session: SessionId) -> Self {
        self.session_id = Some(session);
        self
    }

    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// The user acted on their own account.
    pub fn by_self(self) -> Self {
        let user = self.user_id;
        self.actor(Actor {
            id: user,
            admin: false,
        })
    }

    /// When DynamoDB may drop it.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.created_at + RETENTION
    }

    /// Orders a user's events by time, ties by id: `<createdAt>#<uuid>`.
    pub fn sort_key(&self) -> String {
        format!("{}#{}", super::clock::format(self.created_at), self.id)
    }
}

#[async_trait]
pub trait SecurityEventStore: Send + Sync {
    async fn record(&self, event: &SecurityEvent) -> Result<(), StoreError>;
    /// The user's events that have not expired.
    async fn count_events(&self, user: UserId, now: OffsetDateTime) -> Result<u64, StoreError>;
    /// Up to `limit` of the user's unexpired events, newest first.
    async fn list_events(
        &self,
        user: UserId,
        start: ListStart,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<SecurityEvent>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_serialises_as_its_api_name() {
        for kind in EventType::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
        let names: std::collections::HashSet<_> =
            EventType::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names.len(), 22);
    }

    #[test]
    fn an_origin_keeps_at_most_256_characters_of_user_agent_and_no_empty_values() {
        let long = "é".repeat(300);
        let origin = Origin::new(Some(""), Some(&long));
        assert_eq!(origin.ip_address, None);
        assert_eq!(origin.user_agent.unwrap().chars().count(), 256);
        assert_eq!(Origin::new(None, Some("")).user_agent, None);
    }

    #[tokio::test]
    async fn an_event_takes_the_origin_of_the_request_being_served() {
        let origin = Origin::new(Some("203.0.113.9"), Some("KuriApp/3.1"));
        let event = ORIGIN
            .scope(origin.clone(), async {
                SecurityEvent::new(UserId::new(), EventType::LoginSucceeded, clock_now())
            })
            .await;
        assert_eq!(event.origin, origin);
        let outside = SecurityEvent::new(UserId::new(), EventType::LoginSucceeded, clock_now());
        assert_eq!(outside.origin, Origin::default());
    }

    fn clock_now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }
}

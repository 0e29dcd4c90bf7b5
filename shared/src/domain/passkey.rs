//! Passkeys (WebAuthn credentials), the ceremonies that register them or log in with them,
//! and their port `PasskeyStore`. The WebAuthn verification itself is webauthn-rs's, in
//! `service::passkeys`; here a credential is an opaque serialised value beside the few fields
//! the rules and the listing need.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::domain::StoreError;
use crate::domain::ids::{CeremonyId, PasskeyId, UserId};

/// At most this many passkeys per user (API.md abuse limits).
pub const MAX_PASSKEYS: usize = 10;
/// A ceremony's options must be answered within this long.
pub const CEREMONY_LIFETIME: Duration = Duration::minutes(5);
/// The name a passkey gets when none is given.
pub const DEFAULT_NAME: &str = "Passkey";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passkey {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub name: String,
    /// The authenticator's credential id (claimed uniquely across all users).
    pub credential_id: Vec<u8>,
    /// webauthn-rs's serialised credential: the public key, counter and flags. Never shown.
    pub credential: String,
    /// The signature counter as last stored (a save is conditional on it).
    pub counter: u32,
    pub backed_up: bool,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyKind {
    Registration,
    Login,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Login => "login",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "registration" => Some(Self::Registration),
            "login" => Some(Self::Login),
            _ => None,
        }
    }
}

/// A started ceremony: webauthn-rs's serialised state (its challenge among it), kept between
/// the options request and the answer. Used once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceremony {
    pub id: CeremonyId,
    pub kind: CeremonyKind,
    /// Whose registration it is (`None` for a login, which names no account).
    pub user_id: Option<UserId>,
    pub state: String,
    pub expires_at: OffsetDateTime,
}

impl Ceremony {
    pub fn new(
        kind: CeremonyKind,
        user_id: Option<UserId>,
        state: String,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: CeremonyId::new(),
            kind,
            user_id,
            state,
            expires_at: now + CEREMONY_LIFETIME,
        }
    }

    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

#[async_trait]
pub trait PasskeyStore: Send + Sync {
    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError>;
    /// Removes the ceremony and returns it, at most once however many ask at the same time
    /// (`None`: unknown or already taken). Expiry is the caller's check.
    async fn take_ceremony(&self, id: CeremonyId) -> Result<Option<Ceremony>, StoreError>;
    /// The user's passkeys, in no particular order.
    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<Passkey>, StoreError>;
    /// Stores a new passkey and claims its credential id: `CredentialTaken` if any user holds
    /// it, `TooManyPasskeys` if the user already has [`MAX_PASSKEYS`]; nothing written then.
    async fn add_passkey(&self, passkey: &Passkey) -> Result<(), StoreError>;
    /// The passkey holding this credential id, whoever's it is.
    async fn find_passkey_by_credential(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<Passkey>, StoreError>;
    /// Saves a passkey after a login, if its stored counter is still `previous_counter`
    /// (`VersionConflict` otherwise, `NotFound` if it was removed).
    async fn save_passkey_use(
        &self,
        passkey: &Passkey,
        previous_counter: u32,
    ) -> Result<(), StoreError>;
    /// Removes one passkey of the user and its claim (`NotFound`: the user has no such one).
    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> Result<(), StoreError>;
    /// Removes every passkey of the user and their claims (the user is being deleted).
    async fn delete_all_passkeys(&self, user_id: UserId) -> Result<(), StoreError>;
}

/// The options of a started ceremony, for the client's WebAuthn call.
#[derive(Clone, Debug)]
pub struct CeremonyOptions {
    pub ceremony_id: CeremonyId,
    /// `PublicKeyCredentialCreationOptions` or `PublicKeyCredentialRequestOptions` in their
    /// JSON form.
    pub public_key: serde_json::Value,
}

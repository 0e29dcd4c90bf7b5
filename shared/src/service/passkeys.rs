//! Passkeys: registering one (after re-entering the password), listing and removing them, and
//! logging in with one. Every WebAuthn check (challenge, origin, RP id, signature, UV flag,
//! counter, backup-eligible flag) is webauthn-rs's; this module keeps its state between the two
//! requests of a ceremony, enforces single use and the per-user rules, and stores the result.

use serde_json::{Value, json};
use webauthn_rs::prelude::{
    COSEAlgorithm, Credential, DiscoverableAuthentication, DiscoverableKey, Passkey as Key,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn,
    WebauthnBuilder,
};

use crate::ApiError;
use crate::app::{Core, Principal};
use crate::config::Config;
use crate::domain::StoreError;
use crate::domain::ids::{CeremonyId, PasskeyId, UserId};
use crate::domain::mail::{Mail, Mailer};
use crate::domain::passkey::{Ceremony, CeremonyKind, CeremonyOptions, MAX_PASSKEYS, Passkey};
use crate::domain::security_event::EventType;
use crate::domain::user::User;
use crate::service::sessions::{self, Tokens};
use crate::service::{security_events, users};

/// The relying party of the configuration. webauthn-rs checks the RP id against its first
/// origin, so that is the first web one (an app's `android:apk-key-hash:` origin has no
/// domain).
fn relying_party(config: &Config) -> Result<Webauthn, ApiError> {
    let origins = config
        .webauthn_origins
        .iter()
        .map(|origin| Url::parse(origin))
        .collect::<Result<Vec<Url>, _>>()
        .map_err(|e| ApiError::internal(format!("WEBAUTHN_ORIGINS: {e}")))?;
    let first = origins
        .iter()
        .position(|origin| origin.domain().is_some())
        .ok_or_else(|| ApiError::internal("WEBAUTHN_ORIGINS has no web origin"))?;
    let mut builder = WebauthnBuilder::new(&config.webauthn_rp_id, &origins[first])
        .map_err(|e| ApiError::internal(format!("WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS: {e}")))?
        .rp_name("Kuri");
    for (index, origin) in origins.iter().enumerate() {
        if index != first {
            builder = builder.append_allowed_origin(origin);
        }
    }
    builder.build().map_err(ApiError::internal)
}

/// Records `passkey.added` or `passkey.removed` of `user`, caused by `principal`.
async fn security_event(core: &Core, principal: &Principal, kind: EventType, user: UserId) {
    let event = principal.cause().event(user, kind, core.clock.now());
    security_events::record(core, event).await;
}

/// Appends `item` to the array at `path` of `value`; a missing one means webauthn-rs changed
/// its JSON, which must not pass silently.
fn push(value: &mut Value, path: &[&str], item: Value) -> Result<(), ApiError> {
    let array = path
        .iter()
        .try_fold(value, |value, key| value.get_mut(*key))
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ApiError::internal(format!("webauthn-rs JSON has no {path:?} array")))?;
    array.push(item);
    Ok(())
}

/// Starts registering a passkey for the caller: checks the password and the cap, and returns
/// the creation options (attestation none, UV required, a discoverable credential, ES256,
/// RS256 or Ed25519, the user's own credentials excluded).
pub async fn start_registration(
    core: &Core,
    principal: &Principal,
    current_password: Option<&str>,
) -> Result<CeremonyOptions, ApiError> {
    let user = &principal.user;
    users::confirm_current_password(core, user, current_password).await?;
    let existing = core.passkeys.list_passkeys(user.id).await?;
    if existing.len() >= MAX_PASSKEYS {
        return Err(ApiError::TooManyPasskeys);
    }
    let exclude = existing
        .iter()
        .map(|passkey| Ok(stored_key(passkey)?.cred_id().clone()))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let display_name = user
        .full_name
        .clone()
        .or_else(|| user.first_name.clone())
        .unwrap_or_else(|| user.email.clone());
    let (challenge, state) = relying_party(&core.config)?
        .start_passkey_registration(user.id.as_uuid(), &user.email, &display_name, Some(exclude))
        .map_err(ApiError::internal)?;
    let mut public_key = serde_json::to_value(&challenge.public_key).map_err(ApiError::internal)?;
    let mut state = serde_json::to_value(&state).map_err(ApiError::internal)?;
    // webauthn-rs offers ES256 and RS256; Ed25519 (which it verifies) is added to both the
    // options and the state's list of accepted algorithms.
    push(
        &mut public_key,
        &["pubKeyCredParams"],
        json!({ "type": "public-key", "alg": COSEAlgorithm::EDDSA as i64 }),
    )?;
    push(
        &mut state,
        &["rs", "credential_algorithms"],
        serde_json::to_value(COSEAlgorithm::EDDSA).map_err(ApiError::internal)?,
    )?;
    // Login is discoverable-only, so the credential must be a resident one.
    public_key["authenticatorSelection"]["residentKey"] = json!("required");
    public_key["authenticatorSelection"]["requireResidentKey"] = json!(true);
    let ceremony = Ceremony::new(
        CeremonyKind::Registration,
        Some(user.id),
        state.to_string(),
        core.clock.now(),
    );
    core.passkeys.put_ceremony(&ceremony).await?;
    Ok(CeremonyOptions {
        ceremony_id: ceremony.id,
        public_key,
    })
}

/// The ceremony, used up, if it is live and of this kind.
async fn take_ceremony(
    core: &Core,
    id: CeremonyId,
    kind: CeremonyKind,
) -> Result<Option<Ceremony>, ApiError> {
    let now = core.clock.now();
    Ok(core
        .passkeys
        .take_ceremony(id)
        .await?
        .filter(|ceremony| ceremony.kind == kind && ceremony.is_live(now)))
}

fn stored_key(passkey: &Passkey) -> Result<Key, ApiError> {
    serde_json::from_str(&passkey.credential).map_err(ApiError::internal)
}

/// Completes a registration: the credential must answer the caller's live ceremony. Every
/// refusal is 400 "Passkey could not be verified." (the ceremony is used up all the same); a
/// credential registered to anyone already is 409. Mails the security notice.
pub async fn finish_registration(
    core: &Core,
    mailer: &dyn Mailer,
    principal: &Principal,
    ceremony_id: CeremonyId,
    credential: Value,
    name: String,
) -> Result<Passkey, ApiError> {
    let user = &principal.user;
    let ceremony = take_ceremony(core, ceremony_id, CeremonyKind::Registration)
        .await?
        .filter(|ceremony| ceremony.user_id == Some(user.id))
        .ok_or(ApiError::PasskeyNotVerified)?;
    let state: PasskeyRegistration =
        serde_json::from_str(&ceremony.state).map_err(ApiError::internal)?;
    let credential: RegisterPublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| ApiError::PasskeyNotVerified)?;
    let key = match relying_party(&core.config)?.finish_passkey_registration(&credential, &state) {
        Ok(key) => key,
        Err(error) => {
            tracing::info!(%error, "passkey registration refused");
            // webauthn-rs refuses the user's own credentials (the exclude list) with a generic
            // error: one of theirs is "already registered", as another user's is below.
            let theirs = core
                .passkeys
                .find_passkey_by_credential(credential.raw_id.as_ref())
                .await?
                .is_some_and(|passkey| passkey.user_id == user.id);
            return Err(if theirs {
                ApiError::PasskeyTaken
            } else {
                ApiError::PasskeyNotVerified
            });
        }
    };
    let details = Credential::from(key.clone());
    let passkey = Passkey {
        id: PasskeyId::new(),
        user_id: user.id,
        name,
        credential_id: key.cred_id().as_ref().to_vec(),
        credential: serde_json::to_string(&key).map_err(ApiError::internal)?,
        counter: details.counter,
        backed_up: details.backup_state,
        created_at: core.clock.now(),
        last_used_at: None,
    };
    core.passkeys.add_passkey(&passkey).await?;
    security_event(core, principal, EventType::PasskeyAdded, user.id).await;
    // The passkey is stored: a mail failure is logged, not turned into an error the client
    // would retry.
    if let Err(error) = mailer
        .send(&Mail::passkey_added(&user.email, &passkey.name))
        .await
    {
        tracing::error!(%error, "the passkey-added notice could not be sent");
    }
    Ok(passkey)
}

/// Whose passkeys `principal` may see or remove: their own, or anyone's for a csrAdmin (an
/// unknown or deleted user is then 404).
async fn owner(core: &Core, principal: &Principal, id: UserId) -> Result<User, ApiError> {
    // The caller was read (consistently) by the authentication of this request.
    if principal.user.id == id {
        return Ok(principal.user.clone());
    }
    if !principal.user.is_admin() {
        return Err(ApiError::NoAccess);
    }
    users::find_live(core, id)
        .await?
        .ok_or(ApiError::UserNotFound)
}

/// The user's passkeys, newest first.
pub async fn list(
    core: &Core,
    principal: &Principal,
    id: UserId,
) -> Result<Vec<Passkey>, ApiError> {
    let user = owner(core, principal, id).await?;
    let mut passkeys = core.passkeys.list_passkeys(user.id).await?;
    passkeys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(passkeys)
}

/// Removes one passkey of the user (404 "Passkey not found." if they have no such one).
pub async fn remove(
    core: &Core,
    principal: &Principal,
    id: UserId,
    passkey: PasskeyId,
) -> Result<(), ApiError> {
    let user = owner(core, principal, id).await?;
    match core.passkeys.delete_passkey(user.id, passkey).await {
        Ok(()) => {
            security_event(core, principal, EventType::PasskeyRemoved, user.id).await;
            Ok(())
        }
        Err(StoreError::NotFound) => Err(ApiError::PasskeyNotFound),
        Err(other) => Err(other.into()),
    }
}

/// Starts a discoverable login: request options that name no credential.
pub async fn start_login(core: &Core) -> Result<CeremonyOptions, ApiError> {
    let (challenge, state) = relying_party(&core.config)?
        .start_discoverable_authentication()
        .map_err(ApiError::internal)?;
    let public_key = serde_json::to_value(&challenge.public_key).map_err(ApiError::internal)?;
    let state = serde_json::to_string(&state).map_err(ApiError::internal)?;
    let ceremony = Ceremony::new(CeremonyKind::Login, None, state, core.clock.now());
    core.passkeys.put_ceremony(&ceremony).await?;
    Ok(CeremonyOptions {
        ceremony_id: ceremony.id,
        public_key,
    })
}

/// Completes a passkey login: a full login (the passkey is both factors) with a new session.
/// Every refusal is 401 "Passkey could not be verified."; the login lockout is neither asked
/// nor changed.
pub async fn finish_login(
    core: &Core,
    ceremony_id: CeremonyId,
    credential: Value,
) -> Result<(Tokens, User), ApiError> {
    let refused = || ApiError::PasskeyLoginFailed;
    let ceremony = take_ceremony(core, ceremony_id, CeremonyKind::Login)
        .await?
        .ok_or_else(refused)?;
    let state: DiscoverableAuthentication =
        serde_json::from_str(&ceremony.state).map_err(ApiError::internal)?;
    let credential: PublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| refused())?;
    let relying_party = relying_party(&core.config)?;
    let (user_handle, credential_id) = relying_party
        .identify_discoverable_authentication(&credential)
        .map_err(|_| refused())?;
    let mut passkey = core
        .passkeys
        .find_passkey_by_credential(credential_id)
        .await?
        .filter(|passkey| passkey.user_id.as_uuid() == user_handle)
        .ok_or_else(refused)?;
    let user = core
        .users
        .get_user(passkey.user_id)
        .await?
        .filter(User::is_active)
        .ok_or_else(refused)?;
    let mut key = stored_key(&passkey)?;
    let result = relying_party
        .finish_discoverable_authentication(&credential, state, &[DiscoverableKey::from(&key)])
        .map_err(|error| {
            tracing::info!(%error, user = %user.id, "passkey login refused");
            refused()
        })?;
    key.update_credential(&result);
    let previous_counter = passkey.counter;
    passkey.counter = Credential::from(key.clone()).counter;
    passkey.backed_up = result.backup_state();
    passkey.credential = serde_json::to_string(&key).map_err(ApiError::internal)?;
    passkey.last_used_at = Some(core.clock.now());
    // Conditional on the counter read: of two logins racing with one signature count, one wins.
    match core
        .passkeys
        .save_passkey_use(&passkey, previous_counter)
        .await
    {
        Ok(()) => {}
        Err(StoreError::VersionConflict | StoreError::NotFound) => return Err(refused()),
        Err(other) => return Err(other.into()),
    }
    let tokens = sessions::open_login(core, &user, None).await?;
    Ok((tokens, user))
}

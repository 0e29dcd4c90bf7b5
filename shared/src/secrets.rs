//! The JWT signing key (and the previous one, kept through a rotation), the HMAC key for
//! one-time codes and the key sealing authenticator-app secrets, read once at cold start from
//! Secrets Manager (AWS) or a local file (dev stack). Never logged.

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::config::SecretsSource;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretsDocument {
    jwt_private_key_pem: String,
    /// The signing key before the last rotation: it no longer signs, but the tokens it signed
    /// still verify (and the JWKS still lists it) while it is here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_jwt_private_key_pem: Option<String>,
    hmac_key: String,
    /// Optional here only so that its absence is reported by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    totp_key: Option<String>,
}

pub struct Secrets {
    /// PKCS#8 DER of the Ed25519 signing key.
    pub jwt_private_key_der: Vec<u8>,
    /// PKCS#8 DER of the previous signing key, if the secret still holds it.
    pub previous_jwt_private_key_der: Option<Vec<u8>>,
    pub hmac_key: Vec<u8>,
    /// AES-256-GCM key for authenticator-app secrets at rest.
    pub totp_key: [u8; 32],
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(redacted)")
    }
}

/// A fresh secrets document: a new Ed25519 key (PKCS#8 PEM), a 256-bit HMAC key and a 256-bit
/// TOTP key.
pub fn generate_secrets_json() -> String {
    let document = SecretsDocument {
        totp_key: Some(fresh_totp_key()),
        jwt_private_key_pem: fresh_signing_key_pem(),
        previous_jwt_private_key_pem: None,
        hmac_key: crate::security::crypto::base64url(&crate::security::crypto::random_bytes::<32>()),
    };
    serde_json::to_string_pretty(&document).expect("serializable")
}

/// `json` (a valid secrets document) rotated: a new signing key becomes current, the current
/// one becomes the previous (the one before it is dropped), and the HMAC and TOTP keys stay,
/// since codes, cursors and sealed authenticator secrets depend on them.
pub fn rotate_signing_key_json(json: &str) -> Result<String, String> {
    parse(json)?;
    let mut document: SecretsDocument =
        serde_json::from_str(json).map_err(|_| "secrets are not the expected JSON".to_owned())?;
    document.previous_jwt_private_key_pem = Some(std::mem::replace(
        &mut document.jwt_private_key_pem,
        fresh_signing_key_pem(),
    ));
    Ok(serde_json::to_string_pretty(&document).expect("serializable"))
}

fn fresh_signing_key_pem() -> String {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = Ed25519KeyPair::generate_pkcs8v1(&rng).expect("key generation failed");
    let body = STANDARD.encode(der.as_ref());
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

/// The PKCS#8 DER in an Ed25519 private-key PEM; `name` names the field in errors.
fn signing_key_der(pem: &str, name: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| format!("{name} is not base64 PEM"))?;
    Ed25519KeyPair::from_pkcs8(&der).map_err(|_| format!("{name} is not an Ed25519 PKCS#8 key"))?;
    Ok(der)
}

fn fresh_totp_key() -> String {
    URL_SAFE_NO_PAD.encode(crate::security::secretbox::SecretBox::generate_key())
}

/// `json` with the keys added that a document written before they existed lacks (`totpKey`),
/// the others untouched; `None` when nothing is missing. For the dev stack's secrets file: a
/// deployed secret lacking a key fails `parse` instead.
pub fn complete_secrets_json(json: &str) -> Result<Option<String>, String> {
    let mut document: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|_| "secrets are not a JSON object".to_owned())?;
    if document.contains_key("totpKey") {
        return Ok(None);
    }
    document.insert("totpKey".into(), fresh_totp_key().into());
    Ok(Some(
        serde_json::to_string_pretty(&document).expect("serializable"),
    ))
}

pub fn parse(json: &str) -> Result<Secrets, String> {
    let document: SecretsDocument =
        serde_json::from_str(json).map_err(|_| "secrets are not the expected JSON".to_owned())?;
    let der = signing_key_der(&document.jwt_private_key_pem, "jwtPrivateKeyPem")?;
    let previous_der = document
        .previous_jwt_private_key_pem
        .as_deref()
        .map(|pem| signing_key_der(pem, "previousJwtPrivateKeyPem"))
        .transpose()?;
    let hmac_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(document.hmac_key.trim_end_matches('='))
        .map_err(|_| "hmacKey is not base64url".to_owned())?;
    if hmac_key.len() < 32 {
        return Err("hmacKey must hold at least 32 bytes".into());
    }
    let totp_key = document.totp_key.ok_or("totpKey is missing")?;
    let totp_key = URL_SAFE_NO_PAD
        .decode(totp_key.trim_end_matches('='))
        .map_err(|_| "totpKey is not base64url".to_owned())?
        .try_into()
        .map_err(|_| "totpKey must hold exactly 32 bytes".to_owned())?;
    Ok(Secrets {
        jwt_private_key_der: der,
        previous_jwt_private_key_der: previous_der,
        hmac_key,
        totp_key,
    })
}

pub async fn load(source: &SecretsSource, aws: &aws_config::SdkConfig) -> Result<Secrets, String> {
    let json = match source {
        SecretsSource::File(path) => std::fs::read_to_string(path)
            .map_err(|error| format!("reading {}: {error}", path.display()))?,
        SecretsSource::SecretsManager(id) => aws_sdk_secretsmanager::Client::new(aws)
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|error| format!("reading secret {id}: {error}"))?
            .secret_string
            .ok_or_else(|| format!("secret {id} has no string value"))?,
    };
    parse(&json)
}

/// How long a warm environment uses its secret before reading it again: a rotation reaches
/// every warm environment within this, with no cold start.
pub const MAX_AGE: time::Duration = time::Duration::minutes(10);
/// At most one read per environment in this interval on account of a token naming an unknown
/// `kid`, so a flood of made-up kids costs one Secrets Manager call, not one per request.
pub const UNKNOWN_KID_INTERVAL: time::Duration = time::Duration::seconds(30);

/// Where a warm environment reads its secret again, and when it last did.
pub struct Reload {
    source: SecretsSource,
    aws: aws_config::SdkConfig,
    state: tokio::sync::Mutex<ReloadState>,
}

struct ReloadState {
    loaded_at: time::OffsetDateTime,
    /// The last read caused by an unknown `kid`.
    unknown_kid_at: Option<time::OffsetDateTime>,
}

/// Why a read happens, which decides whether it is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadCause {
    /// The secret in use is older than [`MAX_AGE`].
    Age,
    /// A token names a key this environment does not hold.
    UnknownKid,
}

impl Reload {
    /// A reload of `source`, whose secret was read at `loaded_at`.
    pub fn new(
        source: SecretsSource,
        aws: aws_config::SdkConfig,
        loaded_at: time::OffsetDateTime,
    ) -> Self {
        Self {
            source,
            aws,
            state: tokio::sync::Mutex::new(ReloadState {
                loaded_at,
                unknown_kid_at: None,
            }),
        }
    }

    /// The secret read again at `now`, if `cause` makes a read due; `None` when it is not due
    /// or the read failed (the keys in use stay: logged, without the secret).
    pub async fn reload(&self, cause: ReloadCause, now: time::OffsetDateTime) -> Option<Secrets> {
        // Held across the read: concurrent requests of one environment read once.
        let mut state = self.state.lock().await;
        let due = match cause {
            ReloadCause::Age => now - state.loaded_at >= MAX_AGE,
            ReloadCause::UnknownKid => state
                .unknown_kid_at
                .is_none_or(|at| now - at >= UNKNOWN_KID_INTERVAL),
        };
        if !due {
            return None;
        }
        if cause == ReloadCause::UnknownKid {
            state.unknown_kid_at = Some(now);
        }
        match load(&self.source, &self.aws).await {
            Ok(secrets) => {
                state.loaded_at = now;
                tracing::info!(?cause, "secrets read again");
                Some(secrets)
            }
            Err(error) => {
                // `load`'s errors name the source and the failure, never a key.
                tracing::warn!(?cause, %error, "reading the secrets again failed; the keys in use stay");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_back() {
        let secrets = parse(&generate_secrets_json()).unwrap();
        assert_eq!(secrets.hmac_key.len(), 32);
        assert!(!format!("{secrets:?}").contains(&format!("{:?}", secrets.hmac_key)));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"jwtPrivateKeyPem":"nope","hmacKey":"AAAA"}"#).is_err());
    }

    /// A document as written before `totpKey` existed.
    fn document_without_totp_key() -> String {
        let mut document: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&generate_secrets_json()).unwrap();
        document.remove("totpKey").unwrap();
        serde_json::to_string(&document).unwrap()
    }

    fn with_totp_key(value: &str) -> String {
        let mut document: serde_json::Value =
            serde_json::from_str(&document_without_totp_key()).unwrap();
        document["totpKey"] = value.into();
        document.to_string()
    }

    #[test]
    fn generated_secrets_hold_a_fresh_256_bit_totp_key() {
        let a = parse(&generate_secrets_json()).unwrap();
        let b = parse(&generate_secrets_json()).unwrap();
        assert_ne!(a.totp_key, b.totp_key);
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.totp_key)));
    }

    #[test]
    fn a_document_without_a_totp_key_is_refused_naming_it() {
        let error = parse(&document_without_totp_key()).unwrap_err();
        assert!(error.contains("totpKey"), "{error}");
    }

    #[test]
    fn a_totp_key_that_is_not_32_base64url_bytes_is_refused_naming_it() {
        let short = URL_SAFE_NO_PAD.encode([1u8; 31]);
        let long = URL_SAFE_NO_PAD.encode([1u8; 33]);
        for value in ["not base64!", short.as_str(), long.as_str(), ""] {
            let error = parse(&with_totp_key(value)).unwrap_err();
            assert!(error.contains("totpKey"), "{value:?}: {error}");
        }
        let exact = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert_eq!(parse(&with_totp_key(&exact)).unwrap().totp_key, [1u8; 32]);
    }

    #[test]
    fn completing_an_old_document_adds_only_the_totp_key() {
        let old = document_without_totp_key();
        let completed = complete_secrets_json(&old).unwrap().unwrap();
        parse(&completed).unwrap();
        let old: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&old).unwrap();
        let completed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&completed).unwrap();
        assert_eq!(completed.len(), old.len() + 1);
        for (name, value) in &old {
            assert_eq!(&completed[name], value, "{name}");
        }
    }

    #[test]
    fn a_complete_document_is_left_alone() {
        assert_eq!(complete_secrets_json(&generate_secrets_json()), Ok(None));
    }

    #[test]
    fn completing_something_that_is_not_a_json_object_fails() {
        assert!(complete_secrets_json("[]").is_err());
        assert!(complete_secrets_json("not json").is_err());
    }

    #[test]
    fn rotating_makes_the_current_signing_key_the_previous_and_keeps_the_other_keys() {
        let original = generate_secrets_json();
        let rotated = rotate_signing_key_json(&original).unwrap();
        let (before, after) = (parse(&original).unwrap(), parse(&rotated).unwrap());
        assert_eq!(before.previous_jwt_private_key_der, None);
        assert_eq!(
            after.previous_jwt_private_key_der.as_deref(),
            Some(before.jwt_private_key_der.as_slice())
        );
        assert_ne!(after.jwt_private_key_der, before.jwt_private_key_der);
        assert_eq!(after.hmac_key, before.hmac_key);
        assert_eq!(after.totp_key, before.totp_key);

        // A second rotation drops the oldest key.
        let twice = parse(&rotate_signing_key_json(&rotated).unwrap()).unwrap();
        assert_eq!(
            twice.previous_jwt_private_key_der.as_deref(),
            Some(after.jwt_private_key_der.as_slice())
        );
    }

    #[test]
    fn a_malformed_previous_key_or_document_is_refused_naming_it() {
        let mut document: serde_json::Value =
            serde_json::from_str(&generate_secrets_json()).unwrap();
        document["previousJwtPrivateKeyPem"] = "nope".into();
        let error = parse(&document.to_string()).unwrap_err();
        assert!(error.contains("previousJwtPrivateKeyPem"), "{error}");
        assert!(rotate_signing_key_json(&document.to_string()).is_err());
        assert!(rotate_signing_key_json("{}").is_err());
    }
}

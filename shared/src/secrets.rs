//! The JWT signing key and the HMAC key for one-time codes, read once at cold start from
//! Secrets Manager (AWS) or a local file (dev stack). Never logged.

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::config::SecretsSource;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretsDocument {
    jwt_private_key_pem: String,
    hmac_key: String,
}

pub struct Secrets {
    /// PKCS#8 DER of the Ed25519 signing key.
    pub jwt_private_key_der: Vec<u8>,
    pub hmac_key: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(redacted)")
    }
}

/// A fresh secrets document: a new Ed25519 key (PKCS#8 PEM) and a 256-bit HMAC key.
pub fn generate_secrets_json() -> String {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = Ed25519KeyPair::generate_pkcs8v1(&rng).expect("key generation failed");
    let body = STANDARD.encode(der.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    let document = SecretsDocument {
        jwt_private_key_pem: pem,
        hmac_key: crate::security::crypto::base64url(&crate::security::crypto::random_bytes::<32>()),
    };
    serde_json::to_string_pretty(&document).expect("serializable")
}

pub fn parse(json: &str) -> Result<Secrets, String> {
    let document: SecretsDocument =
        serde_json::from_str(json).map_err(|_| "secrets are not the expected JSON".to_owned())?;
    let body: String = document
        .jwt_private_key_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| "jwtPrivateKeyPem is not base64 PEM".to_owned())?;
    Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|_| "jwtPrivateKeyPem is not an Ed25519 PKCS#8 key".to_owned())?;
    let hmac_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(document.hmac_key.trim_end_matches('='))
        .map_err(|_| "hmacKey is not base64url".to_owned())?;
    if hmac_key.len() < 32 {
        return Err("hmacKey must hold at least 32 bytes".into());
    }
    Ok(Secrets {
        jwt_private_key_der: der,
        hmac_key,
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
}

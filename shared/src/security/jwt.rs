//! EdDSA (Ed25519) access tokens: issue, verify (alg, iss, aud, exp, scope) and publish as JWKS.

use std::sync::{Arc, PoisonError, RwLock};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::domain::ids::{SessionId, UserId};

/// Lifetime of a full access token, in seconds (the `expiresIn` of API.md).
pub const ACCESS_TOKEN_SECS: i64 = 900;
/// Lifetime of a `2fa`-scope token, in seconds.
pub const TWO_FACTOR_TOKEN_SECS: i64 = 300;
/// The `typ` header of our access tokens (RFC 9068), required on verify so that no other
/// JWT signed with the key (RFC 8725 "explicit typing") passes for an access token.
pub const TOKEN_TYPE: &str = "at+jwt";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "full")]
    Full,
    #[serde(rename = "2fa")]
    TwoFactor,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: UserId,
    pub sid: SessionId,
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub scope: Scope,
}

/// One Ed25519 public key that verifies tokens, named by its `kid`.
struct VerifyingKey {
    kid: String,
    public_x: String,
    decoding: DecodingKey,
}

impl VerifyingKey {
    fn from_pkcs8(pkcs8_der: &[u8], which: &str) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8_der)
            .map_err(|_| format!("the {which} signing key is not an Ed25519 PKCS#8 key"))?;
        let public_x = crate::security::crypto::base64url(pair.public_key().as_ref());
        let decoding = DecodingKey::from_ed_components(&public_x)
            .map_err(|error| format!("{which} public key: {error}"))?;
        Ok(Self {
            // The key's own fingerprint: the same key keeps its kid across deployments.
            kid: crate::security::crypto::sha256_hex(&public_x)[..16].to_owned(),
            public_x,
            decoding,
        })
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.public_x,
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

/// The current signing key, which signs every token, and the previous one, which only
/// verifies: after a rotation, tokens signed before it stay valid until they expire.
///
/// A warm environment may swap in the keys of a rotated secret ([`JwtKeys::replace_with`]),
/// so that a rotation needs no cold start.
pub struct JwtKeys {
    set: RwLock<Arc<KeySet>>,
}

/// One secret's keys: what [`JwtKeys`] swaps as a whole.
struct KeySet {
    encoding: EncodingKey,
    current: VerifyingKey,
    previous: Option<VerifyingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl KeySet {
    fn key(&self, kid: &str) -> Option<&VerifyingKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.kid == kid)
    }
}

impl JwtKeys {
    /// `previous_der` is the key that signed before the last rotation, if the secret still
    /// holds it.
    pub fn new(
        pkcs8_der: &[u8],
        previous_der: Option<&[u8]>,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, String> {
        let current = VerifyingKey::from_pkcs8(pkcs8_der, "current")?;
        let previous = previous_der
            .map(|der| VerifyingKey::from_pkcs8(der, "previous"))
            .transpose()?
            .filter(|previous| previous.kid != current.kid);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let set = KeySet {
            encoding: EncodingKey::from_ed_der(pkcs8_der),
            current,
            previous,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        };
        Ok(Self {
            set: RwLock::new(Arc::new(set)),
        })
    }

    /// The keys of a secrets document: its current and, when present, its previous one.
    pub fn from_secrets(
        secrets: &crate::secrets::Secrets,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, String> {
        Self::new(
            &secrets.jwt_private_key_der,
            secrets.previous_jwt_private_key_der.as_deref(),
            issuer,
            audience,
        )
    }

    /// The keys in use now. The lock is held only to clone the `Arc`, never across work.
    fn set(&self) -> Arc<KeySet> {
        Arc::clone(&self.set.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// From now on, `other`'s keys sign and verify (a rotated secret read again).
    pub fn replace_with(&self, other: JwtKeys) {
        let set = other.set();
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = set;
    }

    /// The `kid` tokens are signed under now.
    pub fn current_kid(&self) -> String {
        self.set().current.kid.clone()
    }

    /// Whether `token` names a `kid` that is neither the current nor the previous key's: a
    /// token signed after a rotation this environment has not read yet (or a forged one).
    pub fn names_unknown_kid(&self, token: &str) -> bool {
        jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|header| header.kid)
            .is_some_and(|kid| self.set().key(&kid).is_none())
    }

    /// A signed token and its lifetime in seconds.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        roles: Vec<String>,
        scope: Scope,
        now: OffsetDateTime,
    ) -> (String, i64) {
        let lifetime = match scope {
            Scope::Full => ACCESS_TOKEN_SECS,
            Scope::TwoFactor => TWO_FACTOR_TOKEN_SECS,
        };
        let set = self.set();
        let iat = now.unix_timestamp();
        let claims = Claims {
            iss: set.issuer.clone(),
            aud: set.audience.clone(),
            sub: user,
            sid: session,
            roles,
            iat,
            exp: iat + lifetime,
            jti: uuid::Uuid::new_v4().to_string(),
            scope,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(set.current.kid.clone());
        header.typ = Some(TOKEN_TYPE.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &set.encoding)
            .expect("signing with a validated Ed25519 key cannot fail");
        (token, lifetime)
    }

    /// Checks the `typ` header, signature, algorithm, issuer, audience and expiry (against
    /// `now`), with the key the token's `kid` names; a token without a `kid`, or naming
    /// neither key, fails.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !header.typ?.eq_ignore_ascii_case(TOKEN_TYPE) {
            return None;
        }
        let kid = header.kid?;
        let set = self.set();
        let key = set.key(&kid)?;
        let mut validation = set.validation.clone();
        // Expiry is checked below against the injectable clock.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .ok()?
            .claims;
        (claims.exp > now.unix_timestamp()).then_some(claims)
    }

    /// The RFC 7517 key set other services verify with: the current key, then the previous.
    pub fn jwks(&self) -> Value {
        let set = self.set();
        let keys: Vec<Value> = std::iter::once(&set.current)
            .chain(&set.previous)
            .map(VerifyingKey::jwk)
            .collect();
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn keys(issuer: &str) -> JwtKeys {
        let secrets = crate::secrets::parse(&crate::secrets::generate_secrets_json()).unwrap();
        JwtKeys::from_secrets(&secrets, issuer, "apps").unwrap()
    }

    #[test]
    fn issued_tokens_verify_with_every_claim() {
        let keys = keys("iss");
        let now = OffsetDateTime::now_utc();
        let (user, session) = (UserId::new(), SessionId::new());
        let (token, expires_in) =
            keys.issue(user, session, vec!["csrAdmin".into()], Scope::Full, now);
        assert_eq!(expires_in, 900);
        let claims = keys.verify(&token, now).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));
        assert_eq!(claims.scope, Scope::Full);
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn expired_foreign_and_tampered_tokens_fail() {
        let keys = keys("iss");
        let now = OffsetDateTime::now_utc();
        let (token, _) = keys.issue(
            UserId::new(),
            SessionId::new(),
            vec![],
            Scope::TwoFactor,
            now,
        );
        assert!(keys.verify(&token, now + Duration::seconds(301)).is_none());
        assert!(self::keys("iss").verify(&token, now).is_none());
        let mut tampered = token.clone();
        tampered.replace_range(tampered.len() - 3.., "AAA");
        assert!(keys.verify(&tampered, now).is_none());
        assert!(keys.verify("not.a.jwt", now).is_none());
    }

    #[test]
    fn tokens_of_another_type_are_refused_even_when_signed_with_our_key() {
        let secrets = crate::secrets::parse(&crate::secrets::generate_secrets_json()).unwrap();
        let keys = JwtKeys::new(&secrets.jwt_private_key_der, None, "iss", "apps").unwrap();
        let now = OffsetDateTime::now_utc();
        let (token, _) = keys.issue(UserId::new(), SessionId::new(), vec![], Scope::Full, now);
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().typ.as_deref(),
            Some("at+jwt")
        );
        let claims = keys.verify(&token, now).unwrap();
        for typ in [Some("JWT"), None] {
            let mut header = Header::new(Algorithm::EdDSA);
            header.typ = typ.map(str::to_owned);
            let encoding = EncodingKey::from_ed_der(&secrets.jwt_private_key_der);
            let other = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
            assert!(keys.verify(&other, now).is_none(), "typ {typ:?} accepted");
        }
    }

    #[test]
    fn other_issuers_are_refused() {
        let secrets = crate::secrets::parse(&crate::secrets::generate_secrets_json()).unwrap();
        let ours = JwtKeys::from_secrets(&secrets, "us", "apps").unwrap();
        let theirs = JwtKeys::from_secrets(&secrets, "them", "apps").unwrap();
        let now = OffsetDateTime::now_utc();
        let (token, _) = theirs.issue(UserId::new(), SessionId::new(), vec![], Scope::Full, now);
        assert!(ours.verify(&token, now).is_none());
    }

    #[test]
    fn jwks_verifies_issued_tokens_offline() {
        let keys = keys("iss");
        let jwks = keys.jwks();
        let x = jwks["keys"][0]["x"].as_str().unwrap();
        let decoding = DecodingKey::from_ed_components(x).unwrap();
        let (token, _) = keys.issue(
            UserId::new(),
            SessionId::new(),
            vec![],
            Scope::Full,
            OffsetDateTime::now_utc(),
        );
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["apps"]);
        assert!(jsonwebtoken::decode::<Claims>(&token, &decoding, &validation).is_ok());
    }

    fn fresh_der() -> Vec<u8> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8v1(&rng)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn token(keys: &JwtKeys, now: OffsetDateTime) -> String {
        keys.issue(UserId::new(), SessionId::new(), vec![], Scope::Full, now)
            .0
    }

    #[test]
    fn after_a_rotation_tokens_of_the_previous_key_still_verify_and_new_ones_use_the_new_key() {
        let (old, new) = (fresh_der(), fresh_der());
        let before = JwtKeys::new(&old, None, "iss", "apps").unwrap();
        let after = JwtKeys::new(&new, Some(&old), "iss", "apps").unwrap();
        let now = OffsetDateTime::now_utc();
        let old_token = token(&before, now);
        assert!(after.verify(&old_token, now).is_some());
        let new_token = token(&after, now);
        let kid = jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .unwrap();
        assert_eq!(kid, after.current_kid());
        assert_ne!(kid, before.current_kid());
        // The key before the rotation does not know the new one.
        assert!(before.verify(&new_token, now).is_none());
        // Once the previous key is dropped from the secret, its tokens end.
        let later = JwtKeys::new(&new, None, "iss", "apps").unwrap();
        assert!(later.verify(&old_token, now).is_none());
        assert!(later.verify(&new_token, now).is_some());
    }

    #[test]
    fn the_jwks_lists_the_current_then_the_previous_key() {
        let (old, new) = (fresh_der(), fresh_der());
        let before = JwtKeys::new(&old, None, "iss", "apps").unwrap();
        let after = JwtKeys::new(&new, Some(&old), "iss", "apps").unwrap();
        let jwks = after.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [after.current_kid(), before.current_kid()]);
        assert_eq!(before.jwks()["keys"].as_array().unwrap().len(), 1);
        // The same key given as both is listed once.
        let same = JwtKeys::new(&new, Some(&new), "iss", "apps").unwrap();
        assert_eq!(same.jwks()["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_token_naming_an_unknown_kid_or_none_or_the_wrong_key_is_refused() {
        let (old, new, other) = (fresh_der(), fresh_der(), fresh_der());
        let keys = JwtKeys::new(&new, Some(&old), "iss", "apps").unwrap();
        let now = OffsetDateTime::now_utc();
        let foreign = JwtKeys::new(&other, None, "iss", "apps").unwrap();
        assert!(keys.verify(&token(&foreign, now), now).is_none());

        let claims = keys.verify(&token(&keys, now), now).unwrap();
        let sign = |kid: Option<&str>, der: &[u8]| {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = kid.map(str::to_owned);
            header.typ = Some(TOKEN_TYPE.to_owned());
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der)).unwrap()
        };
        assert!(
            keys.verify(&sign(Some(&keys.current_kid()), &new), now)
                .is_some()
        );
        assert!(keys.verify(&sign(None, &new), now).is_none());
        assert!(keys.verify(&sign(Some("unknown"), &new), now).is_none());
        // Signed by the previous key while naming the current one.
        assert!(
            keys.verify(&sign(Some(&keys.current_kid()), &old), now)
                .is_none()
        );
    }

    #[test]
    fn replaced_keys_sign_and_verify_in_place_and_unknown_kids_are_named() {
        let (old, new) = (fresh_der(), fresh_der());
        let keys = JwtKeys::new(&old, None, "iss", "apps").unwrap();
        let rotated = JwtKeys::new(&new, Some(&old), "iss", "apps").unwrap();
        let now = OffsetDateTime::now_utc();
        let old_token = token(&keys, now);
        let new_token = token(&rotated, now);
        assert!(!keys.names_unknown_kid(&old_token));
        assert!(keys.names_unknown_kid(&new_token));
        // Without a kid, or not a JWT: nothing a reload could fix.
        assert!(!keys.names_unknown_kid("not.a.jwt"));

        keys.replace_with(rotated);
        assert!(keys.verify(&new_token, now).is_some());
        assert!(keys.verify(&old_token, now).is_some());
        assert!(!keys.names_unknown_kid(&new_token));
        let kid = jsonwebtoken::decode_header(token(&keys, now)).unwrap().kid;
        assert_eq!(kid.as_deref(), Some(keys.current_kid().as_str()));
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 2);
    }
}

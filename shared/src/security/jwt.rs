//! EdDSA (Ed25519) access tokens: issue, verify (alg, iss, aud, exp, scope) and publish as JWKS.

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

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    kid: String,
    public_x: String,
    issuer: String,
    audience: String,
}

impl JwtKeys {
    pub fn new(pkcs8_der: &[u8], issuer: &str, audience: &str) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8_der)
            .map_err(|_| "the signing key is not an Ed25519 PKCS#8 key".to_owned())?;
        let public_x = crate::security::crypto::base64url(pair.public_key().as_ref());
        let decoding = DecodingKey::from_ed_components(&public_x)
            .map_err(|error| format!("public key: {error}"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        Ok(Self {
            encoding: EncodingKey::from_ed_der(pkcs8_der),
            decoding,
            validation,
            kid: crate::security::crypto::sha256_hex(&public_x)[..16].to_owned(),
            public_x,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
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
        let iat = now.unix_timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user,
            sid: session,
            roles,
            iat,
            exp: iat + lifetime,
            jti: uuid::Uuid::new_v4().to_string(),
            scope,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(TOKEN_TYPE.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("signing with a validated Ed25519 key cannot fail");
        (token, lifetime)
    }

    /// Checks the `typ` header, signature, algorithm, issuer, audience and expiry (against
    /// `now`).
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Option<Claims> {
        let typ = jsonwebtoken::decode_header(token).ok()?.typ?;
        if !typ.eq_ignore_ascii_case(TOKEN_TYPE) {
            return None;
        }
        let mut validation = self.validation.clone();
        // Expiry is checked below against the injectable clock.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()?
            .claims;
        (claims.exp > now.unix_timestamp()).then_some(claims)
    }

    /// The RFC 7517 key set other services verify with.
    pub fn jwks(&self) -> Value {
        json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": self.public_x,
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn keys(issuer: &str) -> JwtKeys {
        let secrets = crate::secrets::parse(&crate::secrets::generate_secrets_json()).unwrap();
        JwtKeys::new(&secrets.jwt_private_key_der, issuer, "apps").unwrap()
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
        let keys = JwtKeys::new(&secrets.jwt_private_key_der, "iss", "apps").unwrap();
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
        let ours = JwtKeys::new(&secrets.jwt_private_key_der, "us", "apps").unwrap();
        let theirs = JwtKeys::new(&secrets.jwt_private_key_der, "them", "apps").unwrap();
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
}

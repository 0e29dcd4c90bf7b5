//! The fuzz targets, shared by the libFuzzer entry points (`fuzz_targets/`) and the stable
//! loop (`src/bin/stable-fuzz.rs`). Each panics on a broken property, never on bad input.

use lambda_http::{Body, Request};
use serde_json::{Map, Value};
use shared::ApiError;
use shared::domain::ids::{SessionId, UserId};
use shared::http::{self, MAX_BODY_BYTES};
use shared::security::jwt::{Claims, JwtKeys, Scope};
use time::OffsetDateTime;

/// Content types the body target tries, picked by the first byte of the input.
const CONTENT_TYPES: [Option<&str>; 5] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    None,
    Some("text/plain"),
    Some("APPLICATION/JSON ;x"),
];

/// A body like the routes' own: optional fields, unknown ones refused.
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct RegisterLike {
    email: Option<String>,
    password: Option<String>,
    first_name: Option<String>,
    marketing_opt_in: Option<bool>,
    mobile_country_code: Option<i64>,
    build_number: Option<i64>,
}

/// Strict JSON body parsing: never panics; what it accepts is one JSON object of at most
/// 64 KiB sent as JSON (or nothing at all), and it round-trips; what it refuses is a 4xx.
pub fn json_body(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/users");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    let request: Request = builder
        .body(if body.is_empty() {
            Body::Empty
        } else {
            Body::Binary(body.to_vec())
        })
        .expect("a request");
    match http::json_object(&request) {
        Ok(object) => {
            assert!(
                body.len() <= MAX_BODY_BYTES,
                "an oversized body was accepted"
            );
            if body.is_empty() {
                assert!(object.is_empty());
            } else {
                let reparsed: Map<String, Value> = serde_json::from_slice(body).expect("JSON");
                assert_eq!(reparsed, object, "the parsed object differs from the body");
            }
            match http::from_object::<RegisterLike>(object) {
                Ok(_) => {}
                Err(error) => assert_client_error(&error),
            }
        }
        Err(error) => assert_client_error(&error),
    }
}

fn assert_client_error(error: &ApiError) {
    let status = error.status().as_u16();
    assert!(
        [400, 413, 415].contains(&status),
        "{status} from body parsing: {error:?}"
    );
}

/// JWT verification against our keys, with one genuine token to mutate.
pub struct JwtTarget {
    keys: JwtKeys,
    genuine: String,
    claims: Claims,
    now: OffsetDateTime,
}

impl JwtTarget {
    pub fn new() -> Self {
        let secrets = shared::secrets::parse(&shared::secrets::generate_secrets_json())
            .expect("generated secrets parse");
        let keys = JwtKeys::new(
            &secrets.jwt_private_key_der,
            None,
            "fuzz-issuer",
            "fuzz-apps",
        )
        .expect("keys");
        let now = OffsetDateTime::now_utc();
        let (genuine, _) = keys.issue(
            UserId::new(),
            SessionId::new(),
            vec!["csrAdmin".into()],
            Scope::Full,
            now,
        );
        let claims = keys.verify(&genuine, now).expect("our own token verifies");
        Self {
            keys,
            genuine,
            claims,
            now,
        }
    }

    /// The genuine token, for seeding a corpus.
    pub fn genuine(&self) -> &str {
        &self.genuine
    }

    /// Never panics on any input; anything that verifies carries exactly the genuine claims
    /// (nothing can be forged, whatever the header, `alg` or encoding).
    pub fn run(&self, data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let candidate = match mode % 3 {
            // Raw bytes as a token.
            0 => String::from_utf8_lossy(rest).into_owned(),
            // The genuine token with bytes overwritten at input-chosen places.
            1 => {
                let mut bytes = self.genuine.clone().into_bytes();
                for pair in rest.chunks(2) {
                    if let [at, value] = pair {
                        let at = usize::from(*at) * bytes.len() / 256;
                        bytes[at] = *value;
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            // A header of the input's choosing on the genuine claims and signature.
            _ => {
                let mut parts = self.genuine.splitn(3, '.');
                let (_, payload, signature) = (parts.next(), parts.next(), parts.next());
                let header = shared::security::crypto::base64url(rest);
                format!(
                    "{header}.{}.{}",
                    payload.unwrap_or_default(),
                    signature.unwrap_or_default()
                )
            }
        };
        if let Some(claims) = self.keys.verify(&candidate, self.now) {
            assert_eq!(
                (
                    claims.sub,
                    claims.sid,
                    &claims.jti,
                    claims.exp,
                    claims.scope
                ),
                (
                    self.claims.sub,
                    self.claims.sid,
                    &self.claims.jti,
                    self.claims.exp,
                    self.claims.scope
                ),
                "a token that is not ours verified: {candidate}"
            );
            assert_eq!(claims.roles, self.claims.roles);
        }
    }
}

impl Default for JwtTarget {
    fn default() -> Self {
        Self::new()
    }
}

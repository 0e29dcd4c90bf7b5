//! A software authenticator for the tests: it answers WebAuthn creation and request options
//! the way a platform passkey does (a discoverable credential, user present and verified,
//! attestation "none"), with its own keys, so the service's verification is exercised for
//! real. Knobs let a test play a misbehaving or hostile client.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The web origin of `cargo xtask dev` and of the test configuration.
pub const ORIGIN: &str = "http://localhost:3000";
/// The relying party id of `cargo xtask dev` and of the test configuration.
pub const RP_ID: &str = "localhost";

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

pub enum Algorithm {
    Es256,
    Ed25519,
    Rs256,
}

enum Key {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rs256(aws_lc_rs::rsa::KeyPair),
}

pub struct Authenticator {
    key: Key,
    pub credential_id: Vec<u8>,
    /// The user handle the credential stores at registration (sent back at login).
    pub user_handle: Vec<u8>,
    /// The signature counter: raised by one before each assertion when nonzero.
    pub counter: u32,
    /// The RP id whose hash goes into the authenticator data.
    pub rp_id: String,
    /// The origin the client reports in its client data.
    pub origin: String,
    pub user_verified: bool,
    pub backup_eligible: bool,
    pub backed_up: bool,
    /// Flips a byte of the next signatures.
    pub tamper_signature: bool,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// The few CBOR items WebAuthn needs (RFC 8949): integers, byte and text strings, maps.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn head(out: &mut Vec<u8>, major: u8, value: u64) {
        let major = major << 5;
        match value {
            0..=23 => out.push(major | value as u8),
            24..=0xff => out.extend([major | 24, value as u8]),
            0x100..=0xffff => {
                out.push(major | 25);
                out.extend((value as u16).to_be_bytes());
            }
            _ => {
                out.push(major | 26);
                out.extend((value as u32).to_be_bytes());
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(n) if *n >= 0 => Self::head(out, 0, *n as u64),
            Cbor::Int(n) => Self::head(out, 1, (-1 - *n) as u64),
            Cbor::Bytes(bytes) => {
                Self::head(out, 2, bytes.len() as u64);
                out.extend(bytes);
            }
            Cbor::Text(text) => {
                Self::head(out, 3, text.len() as u64);
                out.extend(text.as_bytes());
            }
            Cbor::Map(entries) => {
                Self::head(out, 5, entries.len() as u64);
                for (key, value) in entries {
                    key.encode(out);
                    value.encode(out);
                }
            }
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl Authenticator {
    pub fn new(algorithm: Algorithm) -> Self {
        let key = match algorithm {
            Algorithm::Es256 => Key::Es256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("P-256 key"),
            ),
            Algorithm::Ed25519 => Key::Ed25519(Ed25519KeyPair::generate().expect("Ed25519 key")),
            Algorithm::Rs256 => Key::Rs256(
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("RSA key"),
            ),
        };
        let mut credential_id = vec![0u8; 32];
        SystemRandom::new()
            .fill(&mut credential_id)
            .expect("random");
        Self {
            key,
            credential_id,
            user_handle: Vec::new(),
            counter: 0,
            rp_id: RP_ID.to_owned(),
            origin: ORIGIN.to_owned(),
            user_verified: true,
            backup_eligible: true,
            backed_up: true,
            tamper_signature: false,
        }
    }

    /// The public key in COSE form (RFC 9053).
    fn cose_key(&self) -> Cbor {
        let int = Cbor::Int;
        Cbor::Map(match &self.key {
            Key::Es256(key) => {
                let point = key.public_key().as_ref();
                vec![
                    (int(1), int(2)),
                    (int(3), int(-7)),
                    (int(-1), int(1)),
                    (int(-2), Cbor::Bytes(point[1..33].to_vec())),
                    (int(-3), Cbor::Bytes(point[33..65].to_vec())),
                ]
            }
            Key::Ed25519(key) => vec![
                (int(1), int(1)),
                (int(3), int(-8)),
                (int(-1), int(6)),
                (int(-2), Cbor::Bytes(key.public_key().as_ref().to_vec())),
            ],
            Key::Rs256(key) => vec![
                (int(1), int(3)),
                (int(3), int(-257)),
                (
                    int(-1),
                    Cbor::Bytes(
                        key.public_key()
                            .modulus()
                            .big_endian_without_leading_zero()
                            .to_vec(),
                    ),
                ),
                (
                    int(-2),
                    Cbor::Bytes(
                        key.public_key()
                            .exponent()
                            .big_endian_without_leading_zero()
                            .to_vec(),
                    ),
                ),
            ],
        })
    }

    /// The public key bytes a leak would show (for "never shows key material" checks).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &self.key {
            Key::Es256(key) => key.public_key().as_ref()[1..33].to_vec(),
            Key::Ed25519(key) => key.public_key().as_ref().to_vec(),
            Key::Rs256(key) => {
                key.public_key().modulus().big_endian_without_leading_zero()[..32].to_vec()
            }
        }
    }

    fn flags(&self) -> u8 {
        let mut flags = UP;
        if self.user_verified {
            flags |= UV;
        }
        if self.backup_eligible {
            flags |= BE;
        }
        if self.backed_up {
            flags |= BS;
        }
        flags
    }

    fn authenticator_data(&self, flags: u8) -> Vec<u8> {
        let mut data = digest(&SHA256, self.rp_id.as_bytes()).as_ref().to_vec();
        data.push(flags);
        data.extend(self.counter.to_be_bytes());
        data
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        let mut signature = match &self.key {
            Key::Es256(key) => key.sign(&rng, message).expect("signs").as_ref().to_vec(),
            Key::Ed25519(key) => key.sign(message).as_ref().to_vec(),
            Key::Rs256(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .expect("signs");
                signature
            }
        };
        if self.tamper_signature {
            let last = signature.len() - 1;
            signature[last] ^= 0x01;
        }
        signature
    }

    /// `navigator.credentials.create()`: the `PublicKeyCredential` JSON answering `options`
    /// (the `publicKey` of a registration-options answer).
    pub fn register(&mut self, options: &Value) -> Value {
        let challenge = options["challenge"].as_str().expect("a challenge");
        self.user_handle = unb64(options["user"]["id"].as_str().expect("a user id"));
        let mut auth_data = self.authenticator_data(self.flags() | AT);
        auth_data.extend([0u8; 16]);
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key().to_vec());
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(Vec::new())),
            (Cbor::Text("authData"), Cbor::Bytes(auth_data)),
        ]);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation.to_vec()),
                "clientDataJSON": b64(&self.client_data("webauthn.create", challenge)),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get()`: the assertion answering `options` (the `publicKey` of a
    /// passkey-options answer), signed with the next counter value.
    pub fn login(&mut self, options: &Value) -> Value {
        let challenge = options["challenge"].as_str().expect("a challenge");
        if self.counter > 0 {
            self.counter += 1;
        }
        let auth_data = self.authenticator_data(self.flags());
        let client_data = self.client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend(digest(&SHA256, &client_data).as_ref());
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(&self.sign(&signed)),
                "userHandle": b64(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}

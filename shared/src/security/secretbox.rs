//! Sealing small secrets at rest (authenticator-app secrets): AES-256-GCM under a key from the
//! secret store. Each seal draws a fresh random 96-bit nonce, stored in front of the
//! ciphertext; the associated data names the owner (e.g. the user id), so a sealed value
//! copied onto another owner's record does not open.
//!
//! Random nonces stay safe for well over 2^32 seals under one key (NIST SP 800-38D §8.3),
//! far beyond one secret per user enrolment.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::crypto;

pub const KEY_BYTES: usize = 32;
const TAG_BYTES: usize = 16;

/// A sealed value that is malformed, or was sealed under another key or for another owner.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the sealed value does not open under this key for this owner")]
pub struct OpenError;

/// Seals and opens under one AES-256-GCM key. Never logged (its `Debug` is redacted).
pub struct SecretBox(RandomizedNonceKey);

impl SecretBox {
    pub fn new(key: &[u8; KEY_BYTES]) -> Self {
        Self(RandomizedNonceKey::new(&AES_256_GCM, key).expect("an AES-256 key is 32 bytes"))
    }

    /// A fresh 256-bit key, for the secrets document.
    pub fn generate_key() -> [u8; KEY_BYTES] {
        crypto::random_bytes()
    }

    /// base64url (unpadded) of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plaintext: &[u8], owner: &[u8]) -> String {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(owner), &mut in_out)
            .expect("AES-GCM sealing of a small value cannot fail");
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        URL_SAFE_NO_PAD.encode(sealed)
    }

    pub fn open(&self, sealed: &str, owner: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| OpenError)?;
        if bytes.len() < NONCE_LEN + TAG_BYTES {
            return Err(OpenError);
        }
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| OpenError)?;
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(owner), &mut ciphertext)
            .map_err(|_| OpenError)?;
        Ok(plaintext.to_vec())
    }
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OWNER: &[u8] = b"8d3f0a56-5c1e-4f7b-9a41-2f7c6b0e9d12";
    const PLAINTEXT: &[u8] = b"12345678901234567890";

    fn sealer() -> SecretBox {
        SecretBox::new(&[0x42; KEY_BYTES])
    }

    fn decoded(sealed: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(sealed).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_to_the_plaintext() {
        let sealed = sealer().seal(PLAINTEXT, OWNER);
        assert_eq!(sealer().open(&sealed, OWNER).unwrap(), PLAINTEXT);
    }

    #[test]
    fn the_sealed_form_is_url_safe_and_holds_nonce_ciphertext_and_tag() {
        let sealed = sealer().seal(PLAINTEXT, OWNER);
        assert!(
            sealed
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(
            decoded(&sealed).len(),
            NONCE_LEN + PLAINTEXT.len() + TAG_BYTES
        );
        assert!(
            !decoded(&sealed)
                .windows(PLAINTEXT.len())
                .any(|w| w == PLAINTEXT)
        );
    }

    #[test]
    fn each_seal_uses_a_new_nonce() {
        let a = decoded(&sealer().seal(PLAINTEXT, OWNER));
        let b = decoded(&sealer().seal(PLAINTEXT, OWNER));
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn an_empty_plaintext_round_trips() {
        let sealed = sealer().seal(b"", OWNER);
        assert_eq!(sealer().open(&sealed, OWNER).unwrap(), b"");
    }

    #[test]
    fn another_owner_cannot_open_it() {
        let sealed = sealer().seal(PLAINTEXT, OWNER);
        assert_eq!(
            sealer().open(&sealed, b"0b1e3c1a-0000-4000-8000-000000000000"),
            Err(OpenError)
        );
        assert_eq!(sealer().open(&sealed, b""), Err(OpenError));
    }

    #[test]
    fn another_key_cannot_open_it() {
        let sealed = sealer().seal(PLAINTEXT, OWNER);
        let other = SecretBox::new(&[0x43; KEY_BYTES]);
        assert_eq!(other.open(&sealed, OWNER), Err(OpenError));
        let fresh = SecretBox::new(&SecretBox::generate_key());
        assert_eq!(fresh.open(&sealed, OWNER), Err(OpenError));
    }

    #[test]
    fn malformed_sealed_values_are_refused() {
        let sealed = sealer().seal(PLAINTEXT, OWNER);
        let padded = format!("{sealed}=");
        let short = URL_SAFE_NO_PAD.encode([0u8; NONCE_LEN + TAG_BYTES - 1]);
        for candidate in [
            "",
            "not base64!",
            &padded,
            &short,
            &sealed[..sealed.len() - 2],
        ] {
            assert_eq!(
                sealer().open(candidate, OWNER),
                Err(OpenError),
                "{candidate:?}"
            );
        }
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(SecretBox::generate_key(), SecretBox::generate_key());
    }

    #[test]
    fn debug_output_hides_the_key() {
        assert_eq!(format!("{:?}", sealer()), "SecretBox(redacted)");
    }

    proptest! {
        #[test]
        fn any_plaintext_and_owner_round_trip(
            plaintext in proptest::collection::vec(any::<u8>(), 0..256),
            owner in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let sealed = sealer().seal(&plaintext, &owner);
            prop_assert_eq!(sealer().open(&sealed, &owner), Ok(plaintext));
        }

        #[test]
        fn flipping_any_bit_of_the_sealed_value_is_detected(
            index in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut bytes = decoded(&sealer().seal(PLAINTEXT, OWNER));
            let at = index.index(bytes.len());
            bytes[at] ^= 1 << bit;
            let tampered = URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert_eq!(sealer().open(&tampered, OWNER), Err(OpenError));
        }

        #[test]
        fn truncating_or_extending_the_sealed_value_is_detected(
            keep in 0usize..(NONCE_LEN + 20 + TAG_BYTES),
            extra in proptest::collection::vec(any::<u8>(), 1..8),
        ) {
            let bytes = decoded(&sealer().seal(PLAINTEXT, OWNER));
            let truncated = URL_SAFE_NO_PAD.encode(&bytes[..keep]);
            prop_assert_eq!(sealer().open(&truncated, OWNER), Err(OpenError));
            let extended = URL_SAFE_NO_PAD.encode([bytes.as_slice(), &extra].concat());
            prop_assert_eq!(sealer().open(&extended, OWNER), Err(OpenError));
        }
    }
}

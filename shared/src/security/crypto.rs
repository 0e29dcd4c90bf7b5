//! Small cryptographic helpers over aws-lc-rs (already linked by the AWS SDK): random
//! secrets, SHA-256 digests for stored tokens, HMAC for one-time codes, constant-time equality.

use aws_lc_rs::{constant_time, digest, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes).expect("the system random generator failed");
    bytes
}

/// A 256-bit random token, base64url without padding (43 characters, URL-safe).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// The hex SHA-256 of a high-entropy token: what is stored instead of the token.
pub fn sha256_hex(input: &str) -> String {
    hex(digest::digest(&digest::SHA256, input.as_bytes()).as_ref())
}

/// The hex HMAC-SHA256 of `message` under `key`: how low-entropy codes are stored.
pub fn hmac_hex(key: &[u8], message: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex(hmac::sign(&key, message.as_bytes()).as_ref())
}

/// The HMAC-SHA256 of `message` under `key` as a base64url token (43 characters): a secret
/// that only the key holder can derive from `message`.
pub fn hmac_token(key: &[u8], message: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    base64url(hmac::sign(&key, message.as_bytes()).as_ref())
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> bool {
    constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok()
}

/// A uniformly random string of `digits` decimal digits.
pub fn random_digits(digits: u32) -> String {
    let bound = 10u64.pow(digits);
    // Rejection sampling keeps the distribution uniform.
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let value = u64::from_le_bytes(random_bytes::<8>());
        if value < zone {
            return format!("{:0width$}", value % bound, width = digits as usize);
        }
    }
}

pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn codes_have_six_digits() {
        for _ in 0..100 {
            let code = random_digits(6);
            assert_eq!(code.len(), 6);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn hmac_depends_on_key_and_message() {
        assert_ne!(hmac_hex(b"k1", "123456"), hmac_hex(b"k2", "123456"));
        assert_ne!(hmac_hex(b"k1", "123456"), hmac_hex(b"k1", "123457"));
        assert_eq!(hmac_hex(b"k1", "123456"), hmac_hex(b"k1", "123456"));
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}

//! Authenticator-app codes: RFC 6238 with HMAC-SHA-1, 6 digits, 30-second steps and one step
//! of drift either way, over `totp-rs`. The single use of a time step (RFC 6238 §5.2), which
//! the crate leaves to its caller, is enforced here through `last_accepted_step`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::crypto;

/// 160 bits, the length RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;
pub const STEP_SECONDS: u64 = 30;
const DIGITS: u8 = 6;
/// Steps accepted either side of the current one, for clock drift and typing time.
const DRIFT_STEPS: u64 = 1;
const ISSUER: &str = "Kuri";

/// Everything but RFC 3986's unreserved characters is percent-encoded in the URI label.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The secret shared with one authenticator app. Never logged (its `Debug` is redacted).
#[derive(Clone)]
pub struct TotpSecret([u8; SECRET_BYTES]);

impl TotpSecret {
    pub fn generate() -> Self {
        Self(crypto::random_bytes())
    }

    /// The secret from its raw bytes (as unsealed from storage); `None` unless 20 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The secret from the unpadded base32 a user types into an app; `None` unless it
    /// decodes to 20 bytes.
    pub fn from_base32(text: &str) -> Option<Self> {
        Secret::try_from_base32(text)
            .ok()
            .and_then(|secret| Self::from_bytes(secret.as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8; SECRET_BYTES] {
        &self.0
    }

    /// Unpadded RFC 4648 base32 (32 characters), the form a user types into an app.
    pub fn to_base32(&self) -> String {
        Secret::new_stack(self.0).to_base32()
    }

    /// The Key Uri Format URI an app scans: label `Kuri:<email>`, issuer `Kuri`, and the
    /// default algorithm, digits and period left out.
    pub fn otpauth_uri(&self, email: &str) -> String {
        format!(
            "otpauth://totp/{ISSUER}:{account}?secret={secret}&issuer={ISSUER}",
            account = utf8_percent_encode(email, LABEL),
            secret = self.to_base32(),
        )
    }

    /// The code an app shows at `unix_time` (seconds).
    pub fn code_at(&self, unix_time: u64) -> String {
        self.totp().generate(unix_time).to_string()
    }

    /// The time step `code` belongs to, when it is the code of a step within one step of
    /// `now_unix`'s and later than `last_accepted_step`: a replayed code, or one of an older
    /// step than the last accepted, is refused. `code` must be exactly six ASCII digits.
    pub fn verify(
        &self,
        code: &str,
        now_unix: u64,
        last_accepted_step: Option<u64>,
    ) -> Option<u64> {
        let totp = self.totp();
        let current = now_unix / STEP_SECONDS;
        let window_start = current.saturating_sub(DRIFT_STEPS);
        let earliest = match last_accepted_step {
            Some(last) => window_start.max(last.checked_add(1)?),
            None => window_start,
        };
        (earliest..=current.saturating_add(DRIFT_STEPS)).find(|&step| {
            step.checked_mul(STEP_SECONDS)
                .is_some_and(|time| totp.check(code, time).is_some())
        })
    }

    /// One step only: the window and the replay rule are applied by `verify`.
    fn totp(&self) -> Totp {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_step_duration(STEP_SECONDS)
            .with_skew(0)
            .with_secret(Secret::new_stack(self.0))
            .build()
            .expect("RFC 6238 parameters and a 160-bit secret are valid")
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 6238 appendix B: the SHA-1 key is the ASCII string "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    /// RFC 6238 appendix B SHA-1 rows: (time, 8-digit TOTP).
    const RFC_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    fn six_digits(eight: &str) -> &str {
        &eight[2..]
    }

    #[test]
    fn codes_match_the_rfc_6238_sha1_vectors_truncated_to_six_digits() {
        for (time, expected) in RFC_VECTORS {
            assert_eq!(
                rfc_secret().code_at(time),
                six_digits(expected),
                "at {time}"
            );
        }
    }

    #[test]
    fn the_rfc_6238_vectors_verify_at_their_own_time_step() {
        for (time, expected) in RFC_VECTORS {
            assert_eq!(
                rfc_secret().verify(six_digits(expected), time, None),
                Some(time / STEP_SECONDS),
                "at {time}"
            );
        }
    }

    #[test]
    fn a_code_with_leading_zeros_keeps_them() {
        assert_eq!(rfc_secret().code_at(1_111_111_109), "081804");
        assert_eq!(rfc_secret().verify("81804", 1_111_111_109, None), None);
    }

    #[test]
    fn the_base32_form_of_the_rfc_secret_is_the_well_known_one() {
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn generated_secrets_are_160_random_bits_in_unpadded_base32() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_ne!(a.as_bytes(), b.as_bytes());
        let encoded = a.to_base32();
        assert_eq!(encoded.len(), 32);
        assert!(
            encoded
                .bytes()
                .all(|c| matches!(c, b'A'..=b'Z' | b'2'..=b'7'))
        );
        let decoded = Secret::try_from_base32(&encoded).unwrap();
        assert_eq!(decoded.as_bytes(), a.as_bytes());
    }

    #[test]
    fn the_base32_form_reads_back_as_the_same_secret() {
        let secret = TotpSecret::generate();
        let read = TotpSecret::from_base32(&secret.to_base32()).unwrap();
        assert_eq!(read.as_bytes(), secret.as_bytes());
        assert!(TotpSecret::from_base32("GEZDGNBV").is_none());
        assert!(TotpSecret::from_base32("not base32!").is_none());
    }

    #[test]
    fn only_twenty_bytes_make_a_secret() {
        assert!(TotpSecret::from_bytes(&[7; 20]).is_some());
        assert!(TotpSecret::from_bytes(&[7; 19]).is_none());
        assert!(TotpSecret::from_bytes(&[7; 21]).is_none());
        assert!(TotpSecret::from_bytes(&[]).is_none());
    }

    #[test]
    fn the_otpauth_uri_has_the_kuri_label_secret_and_issuer() {
        assert_eq!(
            rfc_secret().otpauth_uri("ada.lovelace+totp@example.com"),
            "otpauth://totp/Kuri:ada.lovelace%2Btotp%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Kuri"
        );
    }

    #[test]
    fn the_otpauth_uri_encodes_characters_that_would_break_the_label() {
        let uri = rfc_secret().otpauth_uri("a:b?c&d#e/f é@x.y");
        assert!(
            uri.starts_with("otpauth://totp/Kuri:a%3Ab%3Fc%26d%23e%2Ff%20%C3%A9%40x.y?secret=")
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let secret = rfc_secret();
        let debug = format!("{secret:?}");
        assert_eq!(debug, "TotpSecret(redacted)");
        assert!(!debug.contains(&secret.to_base32()));
    }

    const NOW: u64 = 1_700_000_015;

    fn step(time: u64) -> u64 {
        time / STEP_SECONDS
    }

    #[test]
    fn the_current_code_is_accepted_anywhere_in_its_step() {
        let secret = rfc_secret();
        let start = step(NOW) * STEP_SECONDS;
        let code = secret.code_at(start);
        for second in [start, start + 1, start + 29] {
            assert_eq!(secret.verify(&code, second, None), Some(step(NOW)));
        }
    }

    #[test]
    fn codes_one_step_early_or_late_are_accepted_with_their_own_step() {
        let secret = rfc_secret();
        let previous = secret.code_at(NOW - STEP_SECONDS);
        let next = secret.code_at(NOW + STEP_SECONDS);
        assert_eq!(secret.verify(&previous, NOW, None), Some(step(NOW) - 1));
        assert_eq!(secret.verify(&next, NOW, None), Some(step(NOW) + 1));
    }

    #[test]
    fn codes_two_steps_away_are_refused() {
        let secret = rfc_secret();
        let old = secret.code_at(NOW - 2 * STEP_SECONDS);
        let future = secret.code_at(NOW + 2 * STEP_SECONDS);
        assert_eq!(secret.verify(&old, NOW, None), None);
        assert_eq!(secret.verify(&future, NOW, None), None);
    }

    #[test]
    fn a_replayed_code_is_refused() {
        let secret = rfc_secret();
        let code = secret.code_at(NOW);
        let accepted = secret.verify(&code, NOW, None).unwrap();
        assert_eq!(secret.verify(&code, NOW + 1, Some(accepted)), None);
    }

    #[test]
    fn the_code_of_an_older_step_than_the_last_accepted_is_refused_within_the_window() {
        let secret = rfc_secret();
        let next = secret.code_at(NOW + STEP_SECONDS);
        let accepted = secret.verify(&next, NOW, None).unwrap();
        let current = secret.code_at(NOW);
        assert_eq!(secret.verify(&current, NOW, Some(accepted)), None);
    }

    #[test]
    fn the_next_step_is_accepted_after_the_last_one() {
        let secret = rfc_secret();
        let accepted = secret.verify(&secret.code_at(NOW), NOW, None).unwrap();
        let later = NOW + STEP_SECONDS;
        assert_eq!(
            secret.verify(&secret.code_at(later), later, Some(accepted)),
            Some(accepted + 1)
        );
    }

    #[test]
    fn a_code_of_another_secret_is_refused() {
        let other = TotpSecret::from_bytes(&[0xAB; SECRET_BYTES]).unwrap();
        assert_eq!(rfc_secret().verify(&other.code_at(NOW), NOW, None), None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = rfc_secret();
        let code = secret.code_at(NOW);
        for candidate in [
            String::new(),
            code[..5].to_owned(),
            format!("{code}0"),
            format!(" {code}"),
            format!("{code}\n"),
            format!("+{}", &code[1..]),
            code.replace(|_: char| true, "٣"),
            "abcdef".to_owned(),
        ] {
            assert_eq!(secret.verify(&candidate, NOW, None), None, "{candidate:?}");
        }
    }

    #[test]
    fn times_near_the_epoch_do_not_underflow() {
        let secret = rfc_secret();
        assert_eq!(secret.verify(&secret.code_at(0), 0, None), Some(0));
        assert_eq!(secret.verify(&secret.code_at(0), 0, Some(0)), None);
        assert_eq!(secret.verify(&secret.code_at(30), 0, None), Some(1));
    }

    #[test]
    fn times_at_the_end_of_the_clock_do_not_overflow() {
        let secret = rfc_secret();
        let code = secret.code_at(u64::MAX);
        assert_eq!(secret.verify(&code, u64::MAX, None), Some(step(u64::MAX)));
        assert_eq!(secret.verify(&code, u64::MAX, Some(u64::MAX)), None);
    }

    proptest! {
        #[test]
        fn any_secret_accepts_its_own_code_once(
            bytes in any::<[u8; SECRET_BYTES]>(),
            now in 0u64..100_000_000_000,
        ) {
            let secret = TotpSecret::from_bytes(&bytes).unwrap();
            let code = secret.code_at(now);
            prop_assert_eq!(code.len(), 6);
            prop_assert!(code.bytes().all(|c| c.is_ascii_digit()));
            let accepted = secret.verify(&code, now, None);
            prop_assert!(accepted.is_some());
            let accepted = accepted.unwrap();
            prop_assert!(accepted.abs_diff(step(now)) <= DRIFT_STEPS);
            prop_assert_eq!(secret.verify(&code, now, Some(accepted)), None);
        }

        #[test]
        fn an_accepted_step_is_always_later_than_the_last_and_near_now(
            code in "[0-9]{6}",
            now in 0u64..100_000_000_000,
            last in proptest::option::of(0u64..4_000_000_000),
        ) {
            if let Some(accepted) = rfc_secret().verify(&code, now, last) {
                prop_assert!(accepted.abs_diff(step(now)) <= DRIFT_STEPS);
                prop_assert!(last.is_none_or(|last| accepted > last));
                prop_assert_eq!(rfc_secret().code_at(accepted * STEP_SECONDS), code);
            }
        }

        #[test]
        fn anything_but_six_digits_is_refused(code in "\\PC*", now in any::<u64>()) {
            prop_assume!(!(code.len() == 6 && code.bytes().all(|c| c.is_ascii_digit())));
            prop_assert_eq!(rfc_secret().verify(&code, now, None), None);
        }
    }
}

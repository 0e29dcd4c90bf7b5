//! Recovery codes: single-use second factors shown once, stored only as HMACs. Each is 10
//! characters of lowercase RFC 4648 base32 (50 random bits), shown as `xxxxx-xxxxx`.

use super::crypto;

/// Codes in one set.
pub const SET_SIZE: usize = 10;
const CODE_CHARS: usize = 10;
const GROUP_CHARS: usize = 5;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Keeps these HMACs apart from every other use of the same key (e.g. SMS codes).
const HMAC_DOMAIN: &str = "recovery-code:";

/// One recovery code in canonical form (lowercase, no hyphen). Never logged (its `Debug` is
/// redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    pub fn generate() -> Self {
        // 256 is a multiple of 32, so masking a random byte picks each character uniformly.
        let code = crypto::random_bytes::<CODE_CHARS>()
            .iter()
            .map(|byte| char::from(ALPHABET[usize::from(byte & 31)]))
            .collect();
        Self(code)
    }

    /// A code as typed: surrounding whitespace and case ignored, the hyphen after the fifth
    /// character optional. Anything else is `None`.
    pub fn parse(input: &str) -> Option<Self> {
        let input = input.trim();
        let compact = match input.split_once('-') {
            Some((head, tail)) if head.len() == GROUP_CHARS => format!("{head}{tail}"),
            Some(_) => return None,
            None => input.to_owned(),
        };
        let code = compact.to_ascii_lowercase();
        let well_formed =
            code.len() == CODE_CHARS && code.bytes().all(|byte| ALPHABET.contains(&byte));
        well_formed.then_some(Self(code))
    }

    /// The form shown to the user once: `xxxxx-xxxxx`.
    pub fn formatted(&self) -> String {
        let (head, tail) = self.0.split_at(GROUP_CHARS);
        format!("{head}-{tail}")
    }

    /// The stored form: hex HMAC-SHA256 under the codes' HMAC key.
    pub fn hmac(&self, key: &[u8]) -> String {
        crypto::hmac_hex(key, &format!("{HMAC_DOMAIN}{}", self.0))
    }
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(redacted)")
    }
}

/// A new set of `SET_SIZE` distinct codes.
pub fn generate_set() -> Vec<RecoveryCode> {
    let mut codes: Vec<RecoveryCode> = Vec::with_capacity(SET_SIZE);
    while codes.len() < SET_SIZE {
        let code = RecoveryCode::generate();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// The index in `stored` of the HMAC of `candidate`, if any. Every stored HMAC is compared in
/// constant time and none is skipped, so the time taken tells nothing of where, or whether,
/// it matched.
pub fn find(candidate: &RecoveryCode, key: &[u8], stored: &[String]) -> Option<usize> {
    let hmac = candidate.hmac(key);
    stored
        .iter()
        .enumerate()
        .fold(None, |found, (index, entry)| {
            let matches = crypto::constant_time_eq(&hmac, entry);
            found.or(matches.then_some(index))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn code(input: &str) -> RecoveryCode {
        RecoveryCode::parse(input).unwrap()
    }

    #[test]
    fn generated_codes_are_ten_lowercase_base32_characters() {
        for _ in 0..100 {
            let RecoveryCode(code) = RecoveryCode::generate();
            assert_eq!(code.len(), 10);
            assert!(
                code.bytes().all(|c| matches!(c, b'a'..=b'z' | b'2'..=b'7')),
                "{code}"
            );
        }
    }

    #[test]
    fn a_set_has_ten_distinct_codes() {
        let set = generate_set();
        assert_eq!(set.len(), SET_SIZE);
        for (i, code) in set.iter().enumerate() {
            assert!(!set[i + 1..].contains(code));
        }
    }

    #[test]
    fn codes_are_shown_as_two_groups_of_five() {
        assert_eq!(code("abcde23456").formatted(), "abcde-23456");
        let shown = RecoveryCode::generate().formatted();
        assert_eq!(shown.len(), 11);
        assert_eq!(shown.as_bytes()[5], b'-');
    }

    #[test]
    fn input_ignores_the_hyphen_case_and_surrounding_whitespace() {
        let expected = code("abcde23456");
        for input in [
            "abcde-23456",
            "ABCDE-23456",
            "AbCdE23456",
            "  abcde-23456\n",
            "\tABCDE23456 ",
        ] {
            assert_eq!(
                RecoveryCode::parse(input),
                Some(expected.clone()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        for input in [
            "",
            "   ",
            "abcde-2345",
            "abcde-234567",
            "abcd-e23456",
            "abcde--23456",
            "abcde-23-456",
            "-abcde23456",
            "abcde23456-",
            "abcde 23456",
            "abcde_23456",
            "abcde01890",
            "abcde2345é",
            "ａbcde23456",
            "abcde234567",
        ] {
            assert_eq!(RecoveryCode::parse(input), None, "{input:?}");
        }
    }

    #[test]
    fn the_stored_form_is_a_domain_separated_hmac() {
        let code = code("abcde-23456");
        let stored = code.hmac(KEY);
        assert_eq!(stored.len(), 64);
        assert_eq!(stored, code.hmac(KEY));
        assert_ne!(stored, crypto::hmac_hex(KEY, "abcde23456"));
        assert_ne!(stored, code.hmac(b"another key, also 32 bytes long."));
        assert!(!stored.contains("abcde"));
    }

    #[test]
    fn a_candidate_is_found_among_the_stored_hmacs() {
        let set = generate_set();
        let stored: Vec<String> = set.iter().map(|code| code.hmac(KEY)).collect();
        for (index, code) in set.iter().enumerate() {
            let typed = RecoveryCode::parse(&code.formatted().to_uppercase()).unwrap();
            assert_eq!(find(&typed, KEY, &stored), Some(index));
        }
    }

    #[test]
    fn an_unknown_code_or_another_key_finds_nothing() {
        let set = generate_set();
        let stored: Vec<String> = set.iter().map(|code| code.hmac(KEY)).collect();
        let unknown = std::iter::repeat_with(RecoveryCode::generate)
            .find(|code| !set.contains(code))
            .unwrap();
        assert_eq!(find(&unknown, KEY, &stored), None);
        assert_eq!(
            find(&set[0], b"another key, also 32 bytes long.", &stored),
            None
        );
        assert_eq!(find(&set[0], KEY, &[]), None);
    }

    #[test]
    fn a_used_code_removed_from_the_stored_set_is_no_longer_found() {
        let set = generate_set();
        let mut stored: Vec<String> = set.iter().map(|code| code.hmac(KEY)).collect();
        let index = find(&set[3], KEY, &stored).unwrap();
        stored.remove(index);
        assert_eq!(find(&set[3], KEY, &stored), None);
        assert_eq!(find(&set[4], KEY, &stored), Some(3));
    }

    #[test]
    fn debug_output_hides_the_code() {
        let code = code("abcde-23456");
        let debug = format!("{code:?}");
        assert_eq!(debug, "RecoveryCode(redacted)");
    }

    proptest! {
        #[test]
        fn any_valid_code_parses_from_every_accepted_spelling(
            code in "[a-z2-7]{10}",
            hyphen in any::<bool>(),
            upper in proptest::collection::vec(any::<bool>(), 10),
            before in "[ \t\n]{0,3}",
            after in "[ \t\n]{0,3}",
        ) {
            let mut typed: String = code
                .chars()
                .zip(&upper)
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            if hyphen {
                typed.insert(GROUP_CHARS, '-');
            }
            let parsed = RecoveryCode::parse(&format!("{before}{typed}{after}"));
            prop_assert_eq!(parsed, Some(RecoveryCode(code)));
        }

        #[test]
        fn whatever_parses_is_canonical_and_round_trips(input in "\\PC{0,16}") {
            if let Some(code) = RecoveryCode::parse(&input) {
                prop_assert_eq!(code.0.len(), 10);
                prop_assert!(code.0.bytes().all(|c| ALPHABET.contains(&c)));
                prop_assert_eq!(RecoveryCode::parse(&code.formatted()), Some(code));
            }
        }

        #[test]
        fn near_misses_of_a_code_are_refused(
            code in "[a-z2-7]{10}",
            at in 0usize..10,
            bad in "[^a-zA-Z2-7]",
        ) {
            let mut chars: Vec<char> = code.chars().collect();
            chars[at] = bad.chars().next().unwrap();
            let typed: String = chars.into_iter().collect();
            prop_assert_eq!(RecoveryCode::parse(&typed), None);
        }
    }
}

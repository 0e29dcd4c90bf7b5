//! Phone numbers for two-factor auth, built only by parsing: the seed's `mobileNumber` and
//! `mobileCountryCode` pair, or an E.164 string such as `+14155550123`.

use std::fmt;

/// A `mobileCountryCode`: 1 to 999.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountryCode(u16);

impl CountryCode {
    pub fn parse(value: i64) -> Result<Self, &'static str> {
        match u16::try_from(value) {
            Ok(code @ 1..=999) => Ok(Self(code)),
            _ => Err("Must be between 1 and 999."),
        }
    }
}

/// The ten digits of a `mobileNumber` matching the seed's pattern
/// `/^([0-9]{3})\W*([0-9]{3})\W*([0-9]{4})$/`: 3, 3 and 4 ASCII digits, separated by any
/// run of characters other than ASCII letters, digits and `_` (JavaScript's `\W`).
#[derive(Clone, PartialEq, Eq)]
pub struct NationalNumber(String);

impl NationalNumber {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let mut chars = input.chars().peekable();
        let mut digits = String::with_capacity(10);
        for (index, group) in [3, 3, 4].into_iter().enumerate() {
            if index > 0 {
                while chars
                    .next_if(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                    .is_some()
                {}
            }
            for _ in 0..group {
                match chars.next_if(char::is_ascii_digit) {
                    Some(digit) => digits.push(digit),
                    None => return Err(NATIONAL_NUMBER_MESSAGE),
                }
            }
        }
        match chars.next() {
            None => Ok(Self(digits)),
            Some(_) => Err(NATIONAL_NUMBER_MESSAGE),
        }
    }
}

const NATIONAL_NUMBER_MESSAGE: &str = "Must be a 10-digit number such as 415-555-0123.";

impl fmt::Debug for NationalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalNumber(…{})", last4(&self.0))
    }
}

/// An E.164 number: `+`, the country code, then the ten national digits. Its `Debug` and
/// [`PhoneNumber::redacted`] show only the last four digits, so logs never hold a full number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn new(country: CountryCode, national: &NationalNumber) -> Self {
        Self(format!("+{}{}", country.0, national.0))
    }

    /// An E.164 number as clients send it back (the `phoneNumber` of a resend): an optional
    /// `+`, then 11 to 13 digits (a 1–3 digit country code and ten digits), no leading zero.
    pub fn parse_e164(input: &str) -> Option<Self> {
        let input = input.trim();
        let digits = input.strip_prefix('+').unwrap_or(input);
        let valid = (11..=13).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        valid.then(|| Self(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number for logs: its last four digits only.
    pub fn redacted(&self) -> String {
        format!("…{}", last4(&self.0))
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.redacted())
    }
}

fn last4(digits: &str) -> &str {
    &digits[digits.len().saturating_sub(4)..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn phone(number: &str, country: i64) -> Option<String> {
        let national = NationalNumber::parse(number).ok()?;
        let country = CountryCode::parse(country).ok()?;
        Some(PhoneNumber::new(country, &national).as_str().to_owned())
    }

    #[test]
    fn seed_pattern_accepts_common_ways_of_writing_a_number() {
        for number in [
            "4155550123",
            "415-555-0123",
            "415.555.0123",
            "415) 555-0123",
            "415 - 555 - 0123",
        ] {
            assert_eq!(
                phone(number, 1).as_deref(),
                Some("+14155550123"),
                "{number}"
            );
        }
        assert_eq!(phone("207 123 4567", 44).as_deref(), Some("+442071234567"));
    }

    #[test]
    fn seed_pattern_refuses_letters_underscores_and_wrong_lengths() {
        for number in [
            "415555012",
            "41555501234",
            "415a5550123",
            "415_555_0123",
            " 4155550123",
            "4155550123 ",
            "(415) 555-0123",
            "+14155550123",
            "",
            "４１５５５５０１２３",
        ] {
            assert!(NationalNumber::parse(number).is_err(), "{number:?}");
        }
    }

    #[test]
    fn country_codes_run_from_1_to_999() {
        assert!(CountryCode::parse(1).is_ok());
        assert!(CountryCode::parse(999).is_ok());
        for code in [0, -1, 1000, i64::MAX, i64::MIN] {
            assert!(CountryCode::parse(code).is_err(), "{code}");
        }
    }

    #[test]
    fn e164_input_is_normalised_with_a_plus() {
        let expected = Some("+14155550123");
        assert_eq!(
            PhoneNumber::parse_e164("+14155550123")
                .as_ref()
                .map(PhoneNumber::as_str),
            expected
        );
        assert_eq!(
            PhoneNumber::parse_e164(" 14155550123")
                .as_ref()
                .map(PhoneNumber::as_str),
            expected
        );
        for bad in [
            "",
            "+",
            "+1415555012",
            "+14155550123456",
            "+04155550123",
            "+1 415 555 0123",
            "++14155550123",
        ] {
            assert!(PhoneNumber::parse_e164(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_shows_only_the_last_four_digits() {
        let number = PhoneNumber::parse_e164("+14155550123").unwrap();
        assert_eq!(format!("{number:?}"), "PhoneNumber(…0123)");
        assert_eq!(number.redacted(), "…0123");
        let national = NationalNumber::parse("415-555-0123").unwrap();
        assert_eq!(format!("{national:?}"), "NationalNumber(…0123)");
    }

    fn separator() -> impl Strategy<Value = String> {
        // JavaScript's `\W`: anything but ASCII letters, digits and `_`.
        proptest::collection::vec(
            any::<char>().prop_filter("non-word", |c| !(c.is_ascii_alphanumeric() || *c == '_')),
            0..4,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn any_separators_between_the_groups_give_the_same_e164_number(
            digits in "[0-9]{10}",
            first in separator(),
            second in separator(),
            country in 1i64..=999,
        ) {
            let written = format!("{}{first}{}{second}{}", &digits[..3], &digits[3..6], &digits[6..]);
            let e164 = phone(&written, country).expect("the seed pattern matches");
            prop_assert_eq!(&e164, &format!("+{country}{digits}"));
            let reparsed = PhoneNumber::parse_e164(&e164).map(|p| p.as_str().to_owned());
            prop_assert_eq!(reparsed, Some(e164));
        }

        #[test]
        fn accepted_numbers_always_hold_exactly_ten_digits(input in ".{0,24}") {
            if let Ok(national) = NationalNumber::parse(&input) {
                prop_assert_eq!(national.0.len(), 10);
                prop_assert!(national.0.bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(input.chars().filter(char::is_ascii_digit).count(), 10);
            }
        }

        #[test]
        fn a_word_character_inside_the_number_is_refused(
            digits in "[0-9]{10}",
            word in "[A-Za-z_]",
            at in 1usize..10,
        ) {
            let written = format!("{}{word}{}", &digits[..at], &digits[at..]);
            prop_assert!(NationalNumber::parse(&written).is_err());
        }

        #[test]
        fn arbitrary_e164_input_never_panics_and_round_trips(input in "\\+?[0-9 ]{0,16}") {
            if let Some(number) = PhoneNumber::parse_e164(&input) {
                prop_assert_eq!(PhoneNumber::parse_e164(number.as_str()), Some(number.clone()));
            }
        }
    }
}

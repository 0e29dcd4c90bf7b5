//! Properties of every parser and newtype of the domain and of the HTTP plumbing: each accepts
//! exactly what its pattern says, round-trips what it accepts, and never panics on anything.
//! Case counts stay modest so that `cargo xtask test` stays bounded.

use lambda_http::{Body, Request};
use proptest::prelude::*;
use serde_json::{Map, Value};
use shared::ApiError;
use shared::domain::email::Email;
use shared::domain::ids::{SessionId, UserId, parse_uuid};
use shared::domain::phone::{CountryCode, NationalNumber, PhoneNumber};
use shared::domain::report::{CONTENT_TYPES, ContentType, Description, FileName};
use shared::http::{self, MAX_BODY_BYTES};
use shared::security::password::Password;
use shared::service::paging::{self, MAX_LIMIT};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

// ---- email ----

/// A label of letters and digits with inner hyphens.
fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?"
}

/// Addresses of the accepted shape: a dot-separated local part of the usual characters and a
/// domain of two or more labels.
fn well_formed_email() -> impl Strategy<Value = String> {
    (
        prop::collection::vec("[a-zA-Z0-9+_%-]{1,8}", 1..4),
        prop::collection::vec(label(), 2..4),
    )
        .prop_map(|(local, domain)| format!("{}@{}", local.join("."), domain.join(".")))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn well_formed_emails_are_accepted_and_normalise_idempotently(email in well_formed_email()) {
        let parsed = Email::parse(&email).expect("a well-formed address");
        prop_assert_eq!(parsed.as_str(), email.as_str());
        let normalized = parsed.normalized();
        prop_assert_eq!(&normalized, &email.to_lowercase());
        let again = Email::parse(&normalized).expect("the normalised form parses");
        prop_assert_eq!(again.normalized(), normalized);
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_and_inner_whitespace_refused(
        email in well_formed_email(),
        pad in "[ \t]{0,3}",
        cut in 1usize..6,
    ) {
        let padded = format!("{pad}{email}{pad}");
        prop_assert_eq!(Email::parse(&padded).map(|e| e.as_str().to_owned()), Ok(email.clone()));
        let at = cut.min(email.len() - 1);
        prop_assume!(email.is_char_boundary(at));
        let spaced = format!("{} {}", &email[..at], &email[at..]);
        prop_assert!(Email::parse(&spaced).is_err());
    }

    #[test]
    fn a_forbidden_character_anywhere_is_refused(
        email in well_formed_email(),
        bad in prop::sample::select(vec!['<', '>', '(', ')', '[', ']', ',', ';', ':', '\\', '"', '\u{0}', '\n']),
        at in 0usize..40,
    ) {
        // Strictly inside: surrounding whitespace is trimmed, not refused.
        let at = at.clamp(1, email.len() - 1);
        let mut with_bad = email.clone();
        with_bad.insert(at, bad);
        prop_assert!(Email::parse(&with_bad).is_err(), "{:?}", with_bad);
    }

    #[test]
    fn an_email_over_254_bytes_is_refused_before_any_lookup(
        local in "[a-z]{1,64}",
        label in "[a-z]{50,63}",
        labels in 5usize..7,
    ) {
        let domain = vec![label; labels].join(".");
        let email = format!("{local}@{domain}");
        prop_assert!(email.len() > 254);
        prop_assert!(Email::parse(&email).is_err());
    }

    #[test]
    fn arbitrary_input_never_panics_and_what_passes_has_the_shape(input in any::<String>()) {
        if let Ok(email) = Email::parse(&input) {
            let text = email.as_str();
            prop_assert!(text.len() <= 254);
            let (local, domain) = text.rsplit_once('@').expect("an @");
            prop_assert!(!local.is_empty() && local.len() <= 64 && !local.contains('@'));
            prop_assert!(domain.contains('.') && !domain.split('.').any(str::is_empty));
            prop_assert!(!text.chars().any(|c| c.is_whitespace() || c.is_control()));
        }
    }
}

// ---- ids ----

fn is_canonical_uuid(input: &str) -> bool {
    let bytes = input.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn uuids_round_trip_in_any_case(bytes in any::<[u8; 16]>(), upper in any::<bool>()) {
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let text = uuid.hyphenated().to_string();
        let text = if upper { text.to_uppercase() } else { text };
        let id = UserId::parse(&text).expect("the hyphenated form");
        prop_assert_eq!(id.as_uuid(), uuid);
        prop_assert_eq!(id.to_string(), uuid.hyphenated().to_string());
        prop_assert_eq!(SessionId::parse(&id.to_string()).map(|s| s.as_uuid()), Some(uuid));
    }

    #[test]
    fn a_uuid_is_accepted_iff_it_is_the_36_character_hyphenated_form(
        input in prop_oneof![
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "[0-9a-fA-F-]{30,40}",
            "\\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\}",
            "urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[0-9a-f]{32}",
            any::<String>(),
        ]
    ) {
        prop_assert_eq!(parse_uuid(&input).is_some(), is_canonical_uuid(&input), "{:?}", input);
    }
}

// ---- phone numbers ----

/// A run of JavaScript `\W` characters (anything but ASCII letters, digits and `_`).
fn separator() -> impl Strategy<Value = String> {
    prop::collection::vec(
        any::<char>().prop_filter("\\W", |c| !(c.is_ascii_alphanumeric() || *c == '_')),
        0..3,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_country_code_is_accepted_iff_from_1_to_999(value in prop_oneof![-5i64..1005, any::<i64>()]) {
        prop_assert_eq!(CountryCode::parse(value).is_ok(), (1..=999).contains(&value));
    }

    #[test]
    fn the_seed_pattern_gives_the_same_e164_number_whatever_the_separators(
        area in "[0-9]{3}", exchange in "[0-9]{3}", line in "[0-9]{4}",
        first in separator(), second in separator(),
        country in 1i64..=999,
    ) {
        let written = format!("{area}{first}{exchange}{second}{line}");
        let national = NationalNumber::parse(&written).expect("the seed pattern");
        let phone = PhoneNumber::new(CountryCode::parse(country).unwrap(), &national);
        prop_assert_eq!(phone.as_str(), format!("+{country}{area}{exchange}{line}"));
        // What a client sends back at resend parses to the same number.
        prop_assert_eq!(PhoneNumber::parse_e164(phone.as_str()), Some(phone.clone()));
        // Logs only ever see the last four digits.
        prop_assert_eq!(phone.redacted(), format!("…{line}"));
        let debug = format!("{phone:?}");
        let middle = format!("{area}{exchange}");
        prop_assert!(!debug.contains(&middle), "{}", debug);
    }

    #[test]
    fn a_national_number_holds_exactly_ten_digits_or_is_refused(input in any::<String>()) {
        if NationalNumber::parse(&input).is_ok() {
            prop_assert_eq!(input.chars().filter(char::is_ascii_digit).count(), 10);
            prop_assert!(!input.chars().any(|c| c.is_ascii_alphabetic() || c == '_'));
        }
    }

    #[test]
    fn e164_input_is_accepted_iff_11_to_13_digits_without_a_leading_zero(
        input in prop_oneof!["\\+?[0-9]{9,15}", " ?\\+?[0-9 a-z]{0,16} ?", any::<String>()]
    ) {
        let digits = input.trim();
        let digits = digits.strip_prefix('+').unwrap_or(digits);
        let expected = (11..=13).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        let parsed = PhoneNumber::parse_e164(&input);
        prop_assert_eq!(parsed.is_some(), expected, "{:?}", input);
        if let Some(phone) = parsed {
            prop_assert_eq!(phone.as_str(), format!("+{digits}"));
        }
    }
}

// ---- paging ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_page_is_accepted_iff_a_whole_number_from_1(input in prop_oneof![
        "[0-9]{1,21}", "[+-]?[0-9]{1,5}", " ?[0-9]{1,3}[.a-z ]?", any::<String>(),
    ]) {
        let digits = input.strip_prefix('+').unwrap_or(&input);
        let expected = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<u64>().is_ok_and(|page| page >= 1);
        match paging::parse_page(Some(&input)) {
            Ok(page) => {
                prop_assert!(expected, "{:?} accepted", input);
                prop_assert_eq!(Some(page), digits.parse::<u64>().ok());
            }
            Err(error) => {
                prop_assert!(!expected, "{:?} refused", input);
                prop_assert!(matches!(error, ApiError::PageInvalid));
            }
        }
    }

    #[test]
    fn a_limit_is_accepted_iff_from_1_to_100_else_a_field_error(input in prop_oneof![
        (0u64..200).prop_map(|n| n.to_string()), any::<String>(),
    ]) {
        let digits = input.strip_prefix('+').unwrap_or(&input);
        let expected = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.parse::<usize>().is_ok_and(|limit| (1..=MAX_LIMIT).contains(&limit));
        match paging::parse_limit(Some(&input)) {
            Ok(limit) => {
                prop_assert!(expected, "{:?} accepted", input);
                prop_assert!((1..=MAX_LIMIT).contains(&limit));
            }
            Err(ApiError::Validation(fields)) => {
                prop_assert!(!expected, "{:?} refused", input);
                prop_assert!(fields.contains_key("limit"));
            }
            Err(other) => prop_assert!(false, "{:?}: {:?}", input, other),
        }
    }

    #[test]
    fn a_cursor_round_trips_only_under_its_own_scope_and_key(
        key in prop::collection::vec(any::<u8>(), 32),
        scope in "[a-z:=&]{0,24}",
        other_scope in "[a-z:=&]{0,24}",
        position in ("[ -~]{0,30}", any::<u64>()),
    ) {
        let cursor = paging::seal_cursor(&key, &scope, &position);
        let opened: (String, u64) = paging::open_cursor(&key, &scope, &cursor).expect("opens");
        prop_assert_eq!(&opened, &position);
        if other_scope != scope {
            prop_assert!(paging::open_cursor::<(String, u64)>(&key, &other_scope, &cursor).is_err());
        }
        let mut other_key = key.clone();
        other_key[0] ^= 1;
        prop_assert!(paging::open_cursor::<(String, u64)>(&other_key, &scope, &cursor).is_err());
    }

    #[test]
    fn a_tampered_or_arbitrary_cursor_is_page_invalid(
        key in prop::collection::vec(any::<u8>(), 32),
        position in any::<u64>(),
        flip in any::<prop::sample::Index>(),
        input in any::<String>(),
    ) {
        let cursor = paging::seal_cursor(&key, "scope", &position);
        let mut bytes = cursor.clone().into_bytes();
        let at = flip.index(bytes.len());
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ASCII");
        prop_assume!(tampered != cursor);
        prop_assert!(matches!(
            paging::open_cursor::<u64>(&key, "scope", &tampered),
            Err(ApiError::PageInvalid)
        ));
        prop_assert!(paging::open_cursor::<u64>(&key, "scope", &input).is_err());
    }
}

// ---- report fields and passwords ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_file_name_is_accepted_iff_1_to_255_chars_without_separators_or_controls(
        input in prop_oneof!["[^/\\\\]{1,8}", ".{250,260}", any::<String>()]
    ) {
        let count = input.chars().count();
        let expected = (1..=255).contains(&count)
            && !input.chars().any(|c| c == '/' || c == '\\' || c.is_control())
            && input != "."
            && input != "..";
        let parsed = FileName::parse(&input);
        prop_assert_eq!(parsed.is_ok(), expected, "{:?}", input);
        if let Ok(name) = parsed {
            prop_assert_eq!(name.as_str(), input.as_str());
        }
    }

    #[test]
    fn a_content_type_is_accepted_iff_exactly_one_of_the_list(
        input in prop_oneof![prop::sample::select(CONTENT_TYPES.to_vec()).prop_map(str::to_owned),
                             "[a-z]{1,11}/[a-z+.-]{1,12}", any::<String>()],
        upper in any::<bool>(),
    ) {
        let input = if upper { input.to_uppercase() } else { input };
        let parsed = ContentType::parse(&input);
        prop_assert_eq!(parsed.is_ok(), CONTENT_TYPES.contains(&input.as_str()));
        if let Ok(parsed) = parsed {
            prop_assert_eq!(parsed.as_str(), input.as_str());
        }
    }

    #[test]
    fn a_description_is_accepted_iff_at_most_2000_chars(input in prop_oneof![".{0,10}", ".{1995,2005}"]) {
        prop_assert_eq!(Description::parse(&input).is_ok(), input.chars().count() <= 2000);
    }

    #[test]
    fn a_password_is_accepted_iff_6_to_256_chars(input in prop_oneof![".{0,8}", ".{250,260}"]) {
        let count = input.chars().count();
        prop_assert_eq!(Password::parse(&input).is_ok(), (6..=256).contains(&count));
    }
}

// ---- JSON bodies ----

fn body_request(content_type: Option<&str>, body: Vec<u8>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/users");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    let body = if body.is_empty() {
        Body::Empty
    } else {
        Body::Binary(body)
    };
    builder.body(body).expect("a request")
}

/// JSON values a few levels deep, of every kind.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Short dyadic fractions: serde_json (without `float_roundtrip`) reads back exactly
        // the numbers of up to about 15 significant digits, and clients send no others.
        (any::<i16>(), 0i32..5).prop_map(|(m, e)| Value::from(f64::from(m) / 2f64.powi(e))),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn status(result: Result<Map<String, Value>, ApiError>) -> u16 {
    result.map_or_else(|error| error.status().as_u16(), |_| 200)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_json_object_round_trips_through_the_body_parser(
        object in prop::collection::btree_map(any::<String>(), json_value(), 0..6),
        charset in prop::sample::select(vec!["application/json", "application/json; charset=utf-8", "Application/JSON"]),
    ) {
        let object: Map<String, Value> = object.into_iter().collect();
        let bytes = serde_json::to_vec(&object).expect("serializes");
        prop_assume!(bytes.len() <= MAX_BODY_BYTES);
        let parsed = http::json_object(&body_request(Some(charset), bytes)).expect("an object");
        prop_assert_eq!(parsed, object);
    }

    #[test]
    fn any_json_value_other_than_an_object_is_400(value in json_value()) {
        prop_assume!(!value.is_object());
        let bytes = serde_json::to_vec(&value).expect("serializes");
        prop_assert_eq!(status(http::json_object(&body_request(Some("application/json"), bytes))), 400);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_get_200_400_413_or_415(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        content_type in prop::option::of(prop_oneof![
            Just("application/json".to_owned()), "[ -~]{0,30}".prop_map(|s| s),
        ]),
    ) {
        let code = status(http::json_object(&body_request(content_type.as_deref(), bytes.clone())));
        let json = content_type.as_deref().is_some_and(|t| {
            t.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json")
        });
        let expected: &[u16] = match (&content_type, bytes.is_empty()) {
            (None, true) => &[200],
            (None, false) => &[415],
            (Some(_), _) if !json => &[415],
            _ => &[200, 400],
        };
        prop_assert!(expected.contains(&code), "{} for {:?} / {:?}", code, content_type, bytes);
    }

    #[test]
    fn a_body_over_64_kib_is_413_whatever_it_holds(
        extra in 1usize..4096,
        filler in any::<u8>(),
        content_type in prop::option::of(prop_oneof![Just("application/json"), Just("text/plain")]),
    ) {
        let bytes = vec![filler; MAX_BODY_BYTES + extra];
        prop_assert_eq!(status(http::json_object(&body_request(content_type, bytes))), 413);
    }

    #[test]
    fn a_wrong_type_is_a_field_error_under_its_own_name(value in json_value()) {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Sample {
            marketing_opt_in: Option<bool>,
        }
        prop_assume!(!value.is_boolean() && !value.is_null());
        let mut object = Map::new();
        object.insert("marketingOptIn".into(), value);
        match http::from_object::<Sample>(object) {
            Err(ApiError::Validation(fields)) => {
                prop_assert_eq!(fields.keys().collect::<Vec<_>>(), vec!["marketingOptIn"]);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn an_unknown_field_is_a_field_error_under_its_name(name in "[a-zA-Z]{1,12}", value in json_value()) {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Sample {
            first_name: Option<String>,
        }
        prop_assume!(name != "firstName");
        let mut object = Map::new();
        object.insert(name.clone(), value);
        match http::from_object::<Sample>(object) {
            Err(ApiError::Validation(fields)) => prop_assert!(fields.contains_key(&name)),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

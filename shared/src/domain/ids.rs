//! Identifiers: UUID v4 in the 36-character hyphenated form only.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Parses only the canonical `8-4-4-4-12` hyphenated form (any case); `Uuid::parse_str`
/// would also take braced, `urn:uuid:` and simple forms.
pub fn parse_uuid(input: &str) -> Option<Uuid> {
    let bytes = input.as_bytes();
    let hyphens_ok = bytes.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| bytes[i] == b'-')
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| [8, 13, 18, 23].contains(&i) || b.is_ascii_hexdigit());
    if hyphens_ok {
        Uuid::parse_str(input).ok()
    } else {
        None
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn parse(input: &str) -> Option<Self> {
                parse_uuid(input).map(Self)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }
    };
}

id_type!(
    /// A user's uuid.
    UserId
);
id_type!(
    /// A login session's uuid.
    SessionId
);
id_type!(
    /// A diagnostic report's uuid.
    ReportId
);
id_type!(
    /// A security event's uuid.
    EventId
);
id_type!(
    /// A registered passkey's uuid.
    PasskeyId
);
id_type!(
    /// A WebAuthn ceremony's uuid (`ceremonyUUID`).
    CeremonyId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_the_hyphenated_form_is_accepted() {
        let id = "4f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9b";
        assert!(UserId::parse(id).is_some());
        assert!(UserId::parse(&id.to_uppercase()).is_some());
        for bad in [
            "{4f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9b}",
            "urn:uuid:4f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9b",
            "4f8e2a4c1b7d4c1e9a3b0c5d6e7f8a9b",
            "4f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9",
            "not-a-uuid",
            "",
        ] {
            assert!(UserId::parse(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(bytes in any::<[u8; 16]>()) {
            let id = UserId(uuid::Builder::from_random_bytes(bytes).into_uuid());
            prop_assert_eq!(UserId::parse(&id.to_string()), Some(id));
        }

        #[test]
        fn arbitrary_strings_never_panic(input in ".{0,64}") {
            let _ = UserId::parse(&input);
        }
    }
}

//! Email addresses: trimmed, checked for a plausible shape, compared without case.

use std::fmt;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// The longest address accepted anywhere, in bytes (RFC 5321's path limit less the brackets).
pub const MAX_LEN: usize = 254;

impl Email {
    /// Whether `input` is too long to be any account's address, trimmed or lowercased: such
    /// input is refused before any lookup (an email is part of storage keys, which have a
    /// size limit).
    pub fn too_long(input: &str) -> bool {
        let trimmed = input.trim();
        trimmed.len() > MAX_LEN || trimmed.to_lowercase().len() > MAX_LEN
    }

    /// Accepts `local@domain.tld` with no spaces or control characters, up to 254 characters.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let email = input.trim();
        if email.is_empty() || email.len() > MAX_LEN {
            return Err("Must be a valid email address.");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("Must be a valid email address.");
        };
        let valid_local = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let valid_domain = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        let no_bad_chars = !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\\\"".contains(c));
        if valid_local && valid_domain && no_bad_chars {
            Ok(Self(email.to_owned()))
        } else {
            Err("Must be a valid email address.")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which uniqueness and lockout are kept.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_common_addresses_and_normalizes_case() {
        let email = Email::parse("  Ada.Lovelace+robots@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace+robots@Example.COM");
        assert_eq!(email.normalized(), "ada.lovelace+robots@example.com");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada lovelace@example.com",
            "ada@@example.com",
            "ada@exa_mple.com",
            ".ada@example.com",
            "ada@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_over_254_bytes_are_too_long_and_refused() {
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        let longest = format!("{}@{domain}", "a".repeat(64));
        assert_eq!(longest.len(), 254);
        assert!(!Email::too_long(&longest) && Email::parse(&longest).is_ok());
        let over = format!("a{longest}");
        assert!(Email::too_long(&over) && Email::parse(&over).is_err());
        // Bytes, not characters.
        assert!(Email::too_long(&"é".repeat(128)));
    }

    proptest! {
        #[test]
        fn parsed_emails_have_exactly_one_at_sign_in_domain_split(input in ".{0,80}") {
            if let Ok(email) = Email::parse(&input) {
                let (_, domain) = email.as_str().rsplit_once('@').unwrap();
                prop_assert!(!domain.contains('@'));
                prop_assert!(!email.as_str().chars().any(char::is_whitespace));
            }
        }
    }
}

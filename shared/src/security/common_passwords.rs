//! The 10,000 most common passwords (`shared/data/common-passwords.txt`, its source and
//! licence in `shared/data/README.md`), compared case-insensitively: a new password on the list
//! is refused.

use std::collections::HashSet;
use std::sync::LazyLock;

const LIST: &str = include_str!("../../data/common-passwords.txt");

/// Built on first use, not at cold start: only routes that set a password need it.
static COMMON: LazyLock<HashSet<String>> =
    LazyLock::new(|| LIST.lines().map(str::to_lowercase).collect());

pub fn is_common(password: &str) -> bool {
    COMMON.contains(&password.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_list_holds_ten_thousand_entries_one_per_line() {
        assert_eq!(LIST.lines().count(), 10_000);
        assert!(
            LIST.lines()
                .all(|line| !line.is_empty() && line.trim() == line)
        );
        assert!(!LIST.contains('\r'));
    }

    #[test]
    fn well_known_passwords_are_common() {
        for password in [
            "password", "123456", "12345678", "qwerty", "letmein", "iloveyou",
        ] {
            assert!(is_common(password), "{password}");
        }
    }

    #[test]
    fn the_comparison_ignores_case() {
        for password in ["PASSWORD", "Password", "QwErTy", "LetMeIn", "DRAGON"] {
            assert!(is_common(password), "{password}");
        }
    }

    #[test]
    fn entries_written_with_capitals_in_the_list_match_in_any_case() {
        let capitalised = LIST
            .lines()
            .find(|line| line.chars().any(char::is_uppercase));
        let entry = capitalised.expect("the list has entries with capitals");
        assert!(is_common(entry));
        assert!(is_common(&entry.to_lowercase()));
        assert!(is_common(&entry.to_uppercase()));
    }

    #[test]
    fn uncommon_passwords_are_not() {
        for password in [
            "correct horse battery staple",
            "kuri-users-2026!",
            "password ",
            " 123456",
            "",
        ] {
            assert!(!is_common(password), "{password:?}");
        }
    }

    proptest! {
        #[test]
        fn every_entry_is_common_in_any_case(index in any::<prop::sample::Index>()) {
            let entries: Vec<&str> = LIST.lines().collect();
            let entry = index.get(&entries);
            prop_assert!(is_common(entry));
            prop_assert!(is_common(&entry.to_uppercase()));
        }

        #[test]
        fn long_random_passwords_are_not_common(password in "[a-zA-Z0-9]{24,64}") {
            prop_assert!(!is_common(&password));
        }
    }
}

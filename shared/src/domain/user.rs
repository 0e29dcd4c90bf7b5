//! The user record, its public view, and its port `UserStore`.

use super::security_event::SecurityEvent;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::StoreError;
use crate::domain::ids::SessionId;
use crate::domain::ids::UserId;
use async_trait::async_trait;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Inactive,
    /// Soft-deleted: hidden from every read.
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Inactive => "inactive",
            Status::Deleted => "deleted",
        }
    }

    /// The statuses a caller may set or filter by.
    pub fn parse_visible(input: &str) -> Option<Self> {
        match input {
            "active" => Some(Status::Active),
            "inactive" => Some(Status::Inactive),
            _ => None,
        }
    }
}

/// The role catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    #[serde(rename = "csrAdmin")]
    CsrAdmin,
    #[serde(rename = "betaTester")]
    BetaTester,
}

impl Role {
    pub fn parse(input: &str) -> Option<Self> {
        match input {
            "csrAdmin" => Some(Role::CsrAdmin),
            "betaTester" => Some(Role::BetaTester),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::CsrAdmin => "csrAdmin",
            Role::BetaTester => "betaTester",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
    pub status: Status,
    /// Sorted, without duplicates.
    pub roles: Vec<Role>,
    pub marketing_opt_in: bool,
    pub tos_agreed_at: Option<OffsetDateTime>,
    pub password_hash: String,
    /// Incremented by every write; the ETag.
    pub version: u64,
    /// Sessions are live only while their epoch equals this.
    pub session_epoch: u64,
    /// Verified 2FA number (E.164).
    pub mobile: Option<String>,
    /// 2FA number waiting for its first code.
    pub pending_mobile: Option<String>,
    /// The authenticator app and the recovery codes.
    pub factors: AppFactors,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl User {
    pub fn email_key(&self) -> String {
        self.email.to_lowercase()
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::CsrAdmin)
    }

    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }

    /// Any second factor is active: a verified number or an authenticator app.
    pub fn two_factor_enabled(&self) -> bool {
        self.mobile.is_some() || self.totp_enabled()
    }

    /// An authenticator app is active.
    pub fn totp_enabled(&self) -> bool {
        self.factors.totp_secret.is_some()
    }

    /// Removes every second factor: the numbers, the authenticator app and the recovery codes.
    pub fn clear_second_factors(&mut self) {
        self.mobile = None;
        self.pending_mobile = None;
        self.factors = AppFactors::default();
    }

    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.as_str().to_owned()).collect()
    }

    pub fn set_roles(&mut self, roles: impl IntoIterator<Item = Role>) {
        let mut roles: Vec<Role> = roles.into_iter().collect();
        roles.sort();
        roles.dedup();
        self.roles = roles;
    }
}

/// The second factors beside the SMS number. Nothing here is usable as read: the app's
/// secrets are sealed (`security::secretbox`, under the secret store's TOTP key) and the
/// recovery codes are HMACs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppFactors {
    /// The active authenticator app's secret.
    pub totp_secret: Option<String>,
    /// An authenticator app enrolled but not yet confirmed by one of its codes.
    pub pending_totp_secret: Option<String>,
    /// The unused recovery codes.
    pub recovery_codes: Vec<String>,
}

/// A person's name: 1–100 characters of letters (any script), marks, digits, spaces,
/// apostrophes, periods and hyphens.
pub fn parse_name(input: &str) -> Result<String, &'static str> {
    let name = input.trim();
    if name.is_empty() {
        return Err("Must not be empty.");
    }
    if name.chars().count() > 100 {
        return Err("Must be at most 100 characters.");
    }
    let allowed = |c: char| {
        c.is_alphanumeric()
            || c == ' '
            || c == '\''
            || c == '’'
            || c == '.'
            || c == '-'
            || is_combining_mark(c)
    };
    if name.chars().all(allowed) {
        Ok(name.to_owned())
    } else {
        Err("May contain only letters, digits, spaces, apostrophes, periods and hyphens.")
    }
}

/// Combining marks used by scripts such as Devanagari or Thai, which `is_alphanumeric` skips.
fn is_combining_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x0610..=0x061A | 0x064B..=0x065F
        | 0x0900..=0x0903 | 0x093A..=0x094F | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E
        | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x200C | 0x200D | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// Which live users an index read walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserPartition {
    /// Every user that is not deleted.
    Live,
    /// Live users with one status.
    Status(Status),
}

impl UserPartition {
    pub fn contains(self, user: &User) -> bool {
        match self {
            UserPartition::Live => user.status != Status::Deleted,
            UserPartition::Status(status) => user.status == status,
        }
    }
}

/// The index sort key of a user: creation time, then uuid to break ties.
pub fn user_sort_key(user: &User) -> String {
    format!(
        "{}#{}",
        crate::domain::clock::format(user.created_at),
        user.id
    )
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user and claims its email, in one transaction.
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.create_user_recording(user, &[]).await
    }

    /// [`UserStore::create_user`], recording `events` in the same transaction.
    async fn create_user_recording(
        &self,
        user: &User,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError>;

    /// Any user, deleted ones included: callers decide what a deleted user means.
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The live user holding this lowercased email.
    async fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError>;

    /// Replaces `previous` by `user` if the stored version is still `previous.version`
    /// (`user.version` must be one more). In the same transaction it moves the email claim
    /// when the email changed, releases it when the user becomes deleted, and moves
    /// `keep_session` to the user's session epoch.
    async fn save_user(
        &self,
        user: &User,
        previous: &User,
        keep_session: Option<SessionId>,
    ) -> Result<(), StoreError> {
        self.save_user_recording(user, previous, keep_session, &[])
            .await
    }

    /// [`UserStore::save_user`], recording `events` in the same transaction.
    async fn save_user_recording(
        &self,
        user: &User,
        previous: &User,
        keep_session: Option<SessionId>,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError>;

    async fn count_users(&self, partition: UserPartition) -> Result<u64, StoreError>;

    /// Users of a partition in sort-key order, starting after `after`, at most `limit`.
    async fn list_users(
        &self,
        partition: UserPartition,
        after: Option<&str>,
        limit: Option<usize>,
        ascending: bool,
    ) -> Result<Vec<User>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_accept_letters_of_any_script() {
        for name in [
            "Ada",
            "O'Brien",
            "Jean-Luc",
            "St. John",
            "Zoë",
            "渡辺",
            "Владимир",
            "हिन्दी",
            "Anne Marie 2",
        ] {
            assert!(parse_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn names_refuse_markup_and_controls() {
        for name in ["<script>", "a\nb", "a;b", "", "   ", &"x".repeat(101)] {
            assert!(parse_name(name).is_err(), "{name:?}");
        }
    }

    proptest! {
        #[test]
        fn accepted_names_never_hold_angle_brackets_or_controls(input in ".{0,120}") {
            if let Ok(name) = parse_name(&input) {
                prop_assert!(!name.contains('<') && !name.chars().any(char::is_control));
            }
        }
    }
}

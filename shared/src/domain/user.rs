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

/// Shards of each status's index partition: `USERS#<status>#<0..4>` by the uuid, so no index
/// partition takes every user write. Readers query every shard and merge.
pub const INDEX_SHARDS: u32 = 4;

/// Shards of each status's counter (`COUNT#<status>#<0..8>`); a write picks one at random.
pub const COUNTER_SHARDS: u32 = 8;

/// The statuses a live user has: the partitions of the listing indexes and the counters.
pub const LISTED_STATUSES: [Status; 2] = [Status::Active, Status::Inactive];

/// Ends the value part of an index sort key: below every character a name or an email can hold
/// (names and emails refuse control characters), so keys sort by value first, then creation.
pub const SORT_SEPARATOR: char = '\u{1}';

/// Lowercases character by character (no context rules), so the fold of a prefix is a prefix
/// of the fold: what index values and prefix searches compare.
pub fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// The index shard a user lives in, from its (random) uuid.
pub fn index_shard(id: UserId) -> u32 {
    u32::from(id.as_uuid().as_bytes()[15]) % INDEX_SHARDS
}

/// The index partition of a status's shard.
pub fn index_partition(status: Status, shard: u32) -> String {
    format!("USERS#{}#{shard}", status.as_str())
}

/// The listing indexes, one per sortable column; `status` order walks `CreatedAt` status by
/// status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserIndex {
    CreatedAt,
    Email,
    FirstName,
    LastName,
}

impl UserIndex {
    /// The user's sort key in this index: `<folded value><SORT_SEPARATOR><createdAt>#<uuid>`
    /// (a missing name is the empty value, so it sorts first), or the creation key alone.
    pub fn sort_key(self, user: &User) -> String {
        let value = match self {
            Self::CreatedAt => return user_sort_key(user),
            Self::Email => fold(&user.email),
            Self::FirstName => user.first_name.as_deref().map(fold).unwrap_or_default(),
            Self::LastName => user.last_name.as_deref().map(fold).unwrap_or_default(),
        };
        format!("{value}{SORT_SEPARATOR}{}", user_sort_key(user))
    }

    /// The sort-key prefix of every user whose value folds to `fold(value)`.
    pub fn exact_prefix(value: &str) -> String {
        format!("{}{SORT_SEPARATOR}", fold(value))
    }
}

/// A condition a listed row must also meet, besides its index range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowFilter {
    /// `firstName` is exactly this (case counts).
    FirstName(String),
    /// `lastName` is exactly this (case counts).
    LastName(String),
    /// The user's sort key in this index starts with this.
    KeyPrefix(UserIndex, String),
}

impl RowFilter {
    pub fn matches(&self, user: &User) -> bool {
        match self {
            Self::FirstName(name) => user.first_name.as_ref() == Some(name),
            Self::LastName(name) => user.last_name.as_ref() == Some(name),
            Self::KeyPrefix(index, prefix) => index.sort_key(user).starts_with(prefix.as_str()),
        }
    }
}

/// One shard of one listing index, read in sort-key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexQuery {
    pub index: UserIndex,
    pub status: Status,
    pub shard: u32,
    /// Only sort keys starting with this.
    pub prefix: Option<String>,
    /// Only sort keys strictly after this one, in the direction read.
    pub after: Option<String>,
    pub ascending: bool,
    /// Every row also meets these.
    pub filters: Vec<RowFilter>,
}

impl IndexQuery {
    /// Whether `user` is a row of this query (its range and filters).
    pub fn matches(&self, user: &User) -> bool {
        let key = self.index.sort_key(user);
        user.status == self.status
            && index_shard(user.id) == self.shard
            && self
                .prefix
                .as_ref()
                .is_none_or(|p| key.starts_with(p.as_str()))
            && self.after.as_ref().is_none_or(|after| {
                if self.ascending {
                    key > *after
                } else {
                    key < *after
                }
            })
            && self.filters.iter().all(|f| f.matches(user))
    }
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

    /// How many users the partition holds, from its counters (kept by every user write).
    async fn count_users(&self, partition: UserPartition) -> Result<u64, StoreError>;

    /// How many users of the partition have exactly this first name (`UserIndex::FirstName`)
    /// or last name (`UserIndex::LastName`), from the name counters.
    async fn count_by_name(
        &self,
        partition: UserPartition,
        column: UserIndex,
        name: &str,
    ) -> Result<u64, StoreError>;

    /// Up to `limit` rows of `query`, in its order.
    async fn query_index(&self, query: &IndexQuery, limit: usize) -> Result<Vec<User>, StoreError>;

    /// The sort keys of up to `limit` rows of `query`, in its order (keys only: a skip).
    async fn index_keys(&self, query: &IndexQuery, limit: usize)
    -> Result<Vec<String>, StoreError>;

    /// How many rows `query` has (reads them: for filters no counter answers).
    async fn count_index(&self, query: &IndexQuery) -> Result<u64, StoreError>;
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

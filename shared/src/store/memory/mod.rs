//! The in-memory adapter, for fast unit tests. Same contracts as the DynamoDB one, one file
//! per aggregate.

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::domain::code::{FactorGuard, OneTimeCode, SmsLog};
use crate::domain::email_token::{EmailToken, MailLog, TokenKind};
use crate::domain::ids::{SessionId, UserId};
use crate::domain::lockout::Lockout;
use crate::domain::session::Session;
use crate::domain::user::User;

mod codes;
mod events;
mod lockouts;
mod passkeys;
mod reports;
mod sessions;
mod tokens;
mod users;

pub use reports::MemoryReportStorage;

#[derive(Default)]
pub struct MemoryStore {
    users: Mutex<HashMap<UserId, User>>,
    emails: Mutex<HashMap<String, UserId>>,
    sessions: Mutex<HashMap<SessionId, Session>>,
    lockouts: Mutex<HashMap<String, Lockout>>,
    tokens: Mutex<HashMap<(TokenKind, String), EmailToken>>,
    mail_logs: Mutex<HashMap<String, MailLog>>,
    codes: Mutex<HashMap<UserId, OneTimeCode>>,
    sms_logs: Mutex<HashMap<UserId, SmsLog>>,
    sms_days: Mutex<HashMap<String, u32>>,
    factor_guards: Mutex<HashMap<UserId, FactorGuard>>,
    verification_logs: Mutex<VerificationLogMaps>,
    pub(super) reports: Mutex<reports::MemoryReports>,
    pub(super) events: Mutex<events::MemoryEvents>,
    passkeys: Mutex<passkeys::MemoryPasskeys>,
}

/// Verification mail send times and log versions, per user and per address.
#[derive(Default)]
struct VerificationLogMaps {
    by_user: HashMap<UserId, (Vec<OffsetDateTime>, u64)>,
    by_address: HashMap<String, (Vec<OffsetDateTime>, u64)>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The user holding the email claim of `email_key`, if any.
    fn claimed_by(&self, email_key: &str) -> Option<UserId> {
        self.emails.lock().unwrap().get(email_key).copied()
    }
}

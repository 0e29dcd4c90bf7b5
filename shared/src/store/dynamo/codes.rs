//! `CodeStore` on DynamoDB: `USER#<uuid>`/`CODE` holds the user's one code,
//! `USER#<uuid>`/`SMSLIMIT` the user's recent send times and `USER#<uuid>`/`FACTORGUARD` the
//! counts of wrong second-factor codes (see `docs/data-model.md`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, ReturnValue, TransactWriteItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::users::save_uncounted_moves;
use super::{
    DynamoStore, backend, classify, from_item, key, n, parse_ts, put_event, s, to_item, ts, user_pk,
};
use crate::domain::StoreError;
use crate::domain::code::{CodeChange, CodeStore, FactorGuard, OneTimeCode, SmsLog};
use crate::domain::ids::UserId;
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::User;

const CODE_SK: &str = "CODE";
const SMS_LOG_SK: &str = "SMSLIMIT";
const SMS_DAY_SK: &str = "COUNT";
const GUARD_SK: &str = "FACTORGUARD";

/// The service-wide counter of one UTC day's texts.
fn sms_day_pk(day: &str) -> String {
    format!("SMSDAY#{day}")
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeItem {
    pk: String,
    sk: String,
    user_id: UserId,
    code_id: String,
    hmac: String,
    phone: String,
    expires_at: String,
    attempts: u32,
    ttl: i64,
}

impl CodeItem {
    fn from_code(code: &OneTimeCode) -> Self {
        Self {
            pk: user_pk(code.user_id),
            sk: CODE_SK.into(),
            user_id: code.user_id,
            code_id: code.id.clone(),
            hmac: code.hmac.clone(),
            phone: code.phone.clone(),
            expires_at: ts(code.expires_at),
            attempts: code.attempts,
            ttl: code.expires_at.unix_timestamp(),
        }
    }

    fn into_code(self) -> Result<OneTimeCode, StoreError> {
        Ok(OneTimeCode {
            user_id: self.user_id,
            id: self.code_id,
            hmac: self.hmac,
            phone: self.phone,
            expires_at: parse_ts(&self.expires_at)?,
            attempts: self.attempts,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SmsLogItem {
    pk: String,
    sk: String,
    user_id: UserId,
    sent_at: Vec<String>,
    version: u64,
    ttl: i64,
}

/// No TTL: the consecutive count lasts until a right code, a password reset or a csrAdmin's
/// 2FA removal, and the last accepted step as long as the app.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FactorGuardItem {
    pk: String,
    sk: String,
    user_id: UserId,
    window_start: Option<String>,
    window_failures: u32,
    consecutive_failures: u32,
    last_step: Option<u64>,
    version: u64,
}

impl DynamoStore {
    fn code_write(
        &self,
        user: UserId,
        change: CodeChange<'_>,
    ) -> Result<TransactWriteItem, StoreError> {
        let write = TransactWriteItem::builder();
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), CODE_SK)));
        Ok(match change {
            CodeChange::Put(code) => write
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(to_item(&CodeItem::from_code(code))?))
                        .build()
                        .map_err(backend)?,
                )
                .build(),
            CodeChange::Consume(code_id) => write
                .delete(
                    delete
                        .condition_expression("codeId = :id")
                        .expression_attribute_values(":id", s(code_id))
                        .build()
                        .map_err(backend)?,
                )
                .build(),
            CodeChange::Delete => write.delete(delete.build().map_err(backend)?).build(),
        })
    }
}

/// A day's counter is kept a day after the day ends (epoch seconds), then DynamoDB drops it.
fn day_ttl(day: &str) -> Result<i64, StoreError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, format).map_err(backend)?;
    Ok(date.midnight().assume_utc().unix_timestamp() + 2 * 24 * 3600)
}

#[async_trait]
impl CodeStore for DynamoStore {
    async fn get_code(&self, user: UserId) -> Result<Option<OneTimeCode>, StoreError> {
        self.get_consistent::<CodeItem>(user_pk(user), CODE_SK)
            .await?
            .map(CodeItem::into_code)
            .transpose()
    }

    async fn put_code(&self, code: &OneTimeCode) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&CodeItem::from_code(code))?))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn take_attempt(
        &self,
        user: UserId,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<Option<OneTimeCode>, StoreError> {
        // One conditional increment per check: DynamoDB applies updates of one item one at
        // a time, so at most `max_attempts` of any number of racing checks get through.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), CODE_SK)))
            .update_expression("ADD attempts :one")
            // Fixed-width UTC timestamps compare as text.
            .condition_expression("attribute_exists(pk) AND attempts < :max AND expiresAt > :now")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max_attempts))
            .expression_attribute_values(":now", s(ts(now)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .map(|item| from_item::<CodeItem>(item)?.into_code())
                .transpose(),
            Err(error) => match classify(error, StoreError::NotFound) {
                StoreError::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn consume_code(&self, user: UserId, code_id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), CODE_SK)))
            .condition_expression("codeId = :id")
            .expression_attribute_values(":id", s(code_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match classify(error, StoreError::NotFound) {
                StoreError::NotFound => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn save_user_with_code(
        &self,
        user: &User,
        previous: &User,
        change: CodeChange<'_>,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        if user.email_key() != previous.email_key()
            || user.status != previous.status
            || user.first_name != previous.first_name
            || user.last_name != previous.last_name
        {
            return Err(backend(
                "a save with a code change may not change the email, status or names",
            ));
        }
        // The user and the code are items 0 and 1, which the errors below name.
        let mut others = vec![self.code_write(user.id, change)?];
        for event in events {
            others.push(put_event(&self.table, event)?);
        }
        save_uncounted_moves(self, user, previous, others, |index| {
            if index == 1 {
                StoreError::NotFound
            } else {
                // The user changed, or another transaction raced this one: retry.
                StoreError::VersionConflict
            }
        })
        .await
    }

    async fn take_daily_sms(&self, day: &str, cap: u32) -> Result<bool, StoreError> {
        // One conditional increment: DynamoDB applies updates of one item one at a time, so
        // however many texts race, at most `cap` are counted.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(sms_day_pk(day), SMS_DAY_SK)))
            .update_expression("ADD sent :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression("attribute_not_exists(sent) OR sent < :cap")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cap", n(cap))
            .expression_attribute_values(":ttl", n(day_ttl(day)?))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match classify(error, StoreError::VersionConflict) {
                StoreError::VersionConflict => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn return_daily_sms(&self, day: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(sms_day_pk(day), SMS_DAY_SK)))
            .update_expression("ADD sent :minus")
            .condition_expression("sent > :zero")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match classify(error, StoreError::VersionConflict) {
                StoreError::VersionConflict => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn get_sms_log(&self, user: UserId) -> Result<Option<SmsLog>, StoreError> {
        let Some(item) = self
            .get_consistent::<SmsLogItem>(user_pk(user), SMS_LOG_SK)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(SmsLog {
            user_id: item.user_id,
            sent_at: item
                .sent_at
                .iter()
                .map(|at| parse_ts(at))
                .collect::<Result<_, _>>()?,
            version: item.version,
        }))
    }

    async fn put_sms_log(
        &self,
        log: &SmsLog,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let last = log.sent_at.iter().max().copied();
        let item = SmsLogItem {
            pk: user_pk(log.user_id),
            sk: SMS_LOG_SK.into(),
            user_id: log.user_id,
            sent_at: log.sent_at.iter().copied().map(ts).collect(),
            version: log.version,
            // The limits look back one hour; after that the log says nothing.
            ttl: last.map_or(0, |at| (at + time::Duration::hours(1)).unix_timestamp()),
        };
        self.put_versioned(to_item(&item)?, expected_version).await
    }

    async fn get_factor_guard(&self, user: UserId) -> Result<Option<FactorGuard>, StoreError> {
        let Some(item) = self
            .get_consistent::<FactorGuardItem>(user_pk(user), GUARD_SK)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(FactorGuard {
            user_id: item.user_id,
            window_start: item.window_start.as_deref().map(parse_ts).transpose()?,
            window_failures: item.window_failures,
            consecutive_failures: item.consecutive_failures,
            last_step: item.last_step,
            version: item.version,
        }))
    }

    async fn put_factor_guard(
        &self,
        guard: &FactorGuard,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = FactorGuardItem {
            pk: user_pk(guard.user_id),
            sk: GUARD_SK.into(),
            user_id: guard.user_id,
            window_start: guard.window_start.map(ts),
            window_failures: guard.window_failures,
            consecutive_failures: guard.consecutive_failures,
            last_step: guard.last_step,
            version: guard.version,
        };
        self.put_versioned(to_item(&item)?, expected_version).await
    }
}

//! `TokenStore` on DynamoDB: `RECOVERY#`/`VERIFY#<hash>` tokens and the mail caps.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::events::put_event;
use super::users::save_uncounted_moves;
use super::{
    DynamoStore, backend, classify, key, n, parse_ts, put, s, to_item, transaction_error, ts,
    user_pk,
};
use crate::domain::StoreError;
use crate::domain::email_token::{EmailToken, MailLog, TokenKind, TokenStore, VerificationLogs};
use crate::domain::ids::UserId;
use crate::domain::security_event::SecurityEvent;
use crate::domain::user::User;

fn token_pk(kind: TokenKind, hash: &str) -> String {
    match kind {
        TokenKind::Recovery => format!("RECOVERY#{hash}"),
        TokenKind::Verification => format!("VERIFY#{hash}"),
    }
}

fn mail_log_pk(email_key: &str) -> String {
    format!("RECOVERYCAP#{email_key}")
}

/// The verification mail logs: one in the user's partition, one per address.
fn verification_log_keys(user: UserId, email_key: &str) -> [(String, &'static str); 2] {
    [
        (user_pk(user), "VERIFYCAP"),
        (format!("VERIFYCAP#{email_key}"), "CAP"),
    ]
}

/// A verification mail log: send times of the last hour.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CapItem {
    pk: String,
    sk: String,
    sent_at: Vec<String>,
    version: u64,
    ttl: i64,
}

impl CapItem {
    fn times(&self) -> Result<Vec<OffsetDateTime>, StoreError> {
        self.sent_at.iter().map(|at| parse_ts(at)).collect()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenItem {
    pk: String,
    sk: String,
    user_id: UserId,
    email: String,
    session_epoch: u64,
    expires_at: String,
    ttl: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailLogItem {
    pk: String,
    sk: String,
    email_key: String,
    sent_at: Vec<String>,
    version: u64,
    ttl: i64,
}

fn token_item(token: &EmailToken) -> TokenItem {
    TokenItem {
        pk: token_pk(token.kind, &token.hash),
        sk: "TOKEN".into(),
        user_id: token.user_id,
        email: token.email_key.clone(),
        session_epoch: token.session_epoch,
        expires_at: ts(token.expires_at),
        ttl: token.expires_at.unix_timestamp(),
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn put_token(&self, token: &EmailToken) -> Result<(), StoreError> {
        let item = token_item(token);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify(e, StoreError::VersionConflict))?;
        Ok(())
    }

    async fn get_verification_logs(
        &self,
        user: UserId,
        email_key: &str,
    ) -> Result<VerificationLogs, StoreError> {
        let [(user_pk, user_sk), (address_pk, address_sk)] = verification_log_keys(user, email_key);
        // Two reads in parallel: one round trip.
        let (by_user, by_address) = tokio::try_join!(
            self.get_consistent::<CapItem>(user_pk, user_sk),
            self.get_consistent::<CapItem>(address_pk, address_sk),
        )?;
        let mut logs = VerificationLogs::default();
        if let Some(item) = by_user {
            logs.by_user = item.times()?;
            logs.user_version = item.version;
        }
        if let Some(item) = by_address {
            logs.by_address = item.times()?;
            logs.address_version = item.version;
        }
        Ok(logs)
    }

    async fn put_verification_token(
        &self,
        token: &EmailToken,
        logs: &VerificationLogs,
    ) -> Result<(), StoreError> {
        let keys = verification_log_keys(token.user_id, &token.email_key);
        let mut transaction = self.client.transact_write_items().transact_items(put(
            &self.table,
            to_item(&token_item(token))?,
            "attribute_not_exists(pk)",
            None,
        )?);
        for ((pk, sk), (sent_at, version)) in keys.into_iter().zip([
            (&logs.by_user, logs.user_version),
            (&logs.by_address, logs.address_version),
        ]) {
            let last = sent_at.iter().max().copied();
            let item = CapItem {
                pk,
                sk: sk.into(),
                sent_at: sent_at.iter().copied().map(ts).collect(),
                version: version + 1,
                // The caps look back one hour; after that the log says nothing.
                ttl: last.map_or(0, |at| (at + time::Duration::hours(1)).unix_timestamp()),
            };
            let (condition, values) = if version == 0 {
                ("attribute_not_exists(pk)", None)
            } else {
                (
                    "version = :v",
                    Some(HashMap::from([(":v".to_owned(), n(version))])),
                )
            };
            transaction =
                transaction.transact_items(put(&self.table, to_item(&item)?, condition, values)?);
        }
        transaction
            .send()
            .await
            .map_err(|error| transaction_error(error, |_| StoreError::VersionConflict))?;
        Ok(())
    }

    async fn get_token(
        &self,
        kind: TokenKind,
        hash: &str,
    ) -> Result<Option<EmailToken>, StoreError> {
        let Some(item) = self
            .get_consistent::<TokenItem>(token_pk(kind, hash), "TOKEN")
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(EmailToken {
            kind,
            hash: hash.to_owned(),
            user_id: item.user_id,
            email_key: item.email,
            session_epoch: item.session_epoch,
            expires_at: parse_ts(&item.expires_at)?,
        }))
    }

    async fn redeem_token(
        &self,
        kind: TokenKind,
        hash: &str,
        now: OffsetDateTime,
        user: &User,
        previous: &User,
        events: &[SecurityEvent],
    ) -> Result<(), StoreError> {
        if user.email_key() != previous.email_key()
            || user.status != previous.status
            || user.first_name != previous.first_name
            || user.last_name != previous.last_name
        {
            return Err(backend(
                "redeeming a token may not change the email, status or names",
            ));
        }
        let use_token = TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(token_pk(kind, hash), "TOKEN")))
                    // Fixed-width UTC timestamps compare as text.
                    .condition_expression("attribute_exists(pk) AND expiresAt > :now")
                    .expression_attribute_values(":now", s(ts(now)))
                    .build()
                    .map_err(backend)?,
            )
            .build();
        // The user and the token are items 0 and 1, which the errors below name.
        let mut others = vec![use_token];
        for event in events {
            others.push(put_event(&self.table, event)?);
        }
        save_uncounted_moves(self, user, previous, others, |index| {
            if index == 1 {
                StoreError::NotFound
            } else {
                StoreError::VersionConflict
            }
        })
        .await
    }

    async fn get_mail_log(&self, email_key: &str) -> Result<Option<MailLog>, StoreError> {
        let Some(item) = self
            .get_consistent::<MailLogItem>(mail_log_pk(email_key), "CAP")
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(MailLog {
            email_key: item.email_key,
            sent_at: item
                .sent_at
                .iter()
                .map(|at| parse_ts(at))
                .collect::<Result<_, _>>()?,
            version: item.version,
        }))
    }

    async fn put_mail_log(
        &self,
        log: &MailLog,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let last = log
            .sent_at
            .iter()
            .max()
            .copied()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let item = MailLogItem {
            pk: mail_log_pk(&log.email_key),
            sk: "CAP".into(),
            email_key: log.email_key.clone(),
            sent_at: log.sent_at.iter().copied().map(ts).collect(),
            version: log.version,
            ttl: (last + time::Duration::hours(1)).unix_timestamp(),
        };
        self.put_versioned(to_item(&item)?, expected_version).await
    }
}

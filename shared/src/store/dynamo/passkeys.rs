//! `PasskeyStore` on DynamoDB: a passkey sits in its user's partition
//! (`USER#<uuid>`, `PASSKEY#<passkey uuid>`) beside the user's passkey count
//! (`PASSKEYCOUNT`), its credential id is claimed in `PASSKEYCRED#<base64url id>`, and a
//! ceremony is `CEREMONY#<uuid>` until it is used or its TTL passes.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, ReturnValue, TransactWriteItem, Update};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{
    DynamoStore, Item, backend, classify, from_item, key, n, parse_ts, put, s, to_item,
    transaction_error, ts, user_pk,
};
use crate::domain::StoreError;
use crate::domain::ids::{CeremonyId, PasskeyId, UserId};
use crate::domain::passkey::{Ceremony, CeremonyKind, MAX_PASSKEYS, Passkey, PasskeyStore};

const SK_PREFIX: &str = "PASSKEY#";
const COUNT_SK: &str = "PASSKEYCOUNT";
const CLAIM_SK: &str = "PASSKEYCRED";
const CEREMONY_SK: &str = "CEREMONY";

fn claim_pk(credential_id: &[u8]) -> String {
    format!("PASSKEYCRED#{}", URL_SAFE_NO_PAD.encode(credential_id))
}

fn ceremony_pk(id: CeremonyId) -> String {
    format!("CEREMONY#{id}")
}

fn passkey_sk(id: PasskeyId) -> String {
    format!("{SK_PREFIX}{id}")
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasskeyItem {
    pk: String,
    sk: String,
    uuid: PasskeyId,
    user_id: UserId,
    name: String,
    credential_id: String,
    credential: String,
    counter: u32,
    backed_up: bool,
    created_at: String,
    last_used_at: Option<String>,
}

impl PasskeyItem {
    fn from_passkey(passkey: &Passkey) -> Self {
        Self {
            pk: user_pk(passkey.user_id),
            sk: passkey_sk(passkey.id),
            uuid: passkey.id,
            user_id: passkey.user_id,
            name: passkey.name.clone(),
            credential_id: URL_SAFE_NO_PAD.encode(&passkey.credential_id),
            credential: passkey.credential.clone(),
            counter: passkey.counter,
            backed_up: passkey.backed_up,
            created_at: ts(passkey.created_at),
            last_used_at: passkey.last_used_at.map(ts),
        }
    }

    fn into_passkey(self) -> Result<Passkey, StoreError> {
        Ok(Passkey {
            id: self.uuid,
            user_id: self.user_id,
            name: self.name,
            credential_id: URL_SAFE_NO_PAD
                .decode(&self.credential_id)
                .map_err(backend)?,
            credential: self.credential,
            counter: self.counter,
            backed_up: self.backed_up,
            created_at: parse_ts(&self.created_at)?,
            last_used_at: self.last_used_at.as_deref().map(parse_ts).transpose()?,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClaimItem {
    pk: String,
    sk: String,
    user_id: UserId,
    passkey_id: PasskeyId,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CeremonyItem {
    pk: String,
    sk: String,
    uuid: CeremonyId,
    kind: String,
    user_id: Option<UserId>,
    state: String,
    expires_at: String,
    ttl: i64,
}

impl CeremonyItem {
    fn into_ceremony(self) -> Result<Ceremony, StoreError> {
        Ok(Ceremony {
            id: self.uuid,
            kind: CeremonyKind::parse(&self.kind)
                .ok_or_else(|| backend(format!("bad ceremony kind {:?}", self.kind)))?,
            user_id: self.user_id,
            state: self.state,
            expires_at: parse_ts(&self.expires_at)?,
        })
    }
}

fn delete(
    table: &str,
    key: Item,
    condition: Option<&str>,
) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(key))
                .set_condition_expression(condition.map(str::to_owned))
                .build()
                .map_err(backend)?,
        )
        .build())
}

impl DynamoStore {
    async fn passkey_items(&self, user_id: UserId) -> Result<Vec<Passkey>, StoreError> {
        let mut passkeys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(user_pk(user_id)))
                .expression_attribute_values(":prefix", s(SK_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            for item in output.items.unwrap_or_default() {
                passkeys.push(from_item::<PasskeyItem>(item)?.into_passkey()?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(passkeys),
            }
        }
    }

    async fn get_passkey(
        &self,
        user_id: UserId,
        id: PasskeyId,
    ) -> Result<Option<Passkey>, StoreError> {
        self.get_consistent::<PasskeyItem>(user_pk(user_id), &passkey_sk(id))
            .await?
            .map(PasskeyItem::into_passkey)
            .transpose()
    }
}

#[async_trait]
impl PasskeyStore for DynamoStore {
    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        let item = CeremonyItem {
            pk: ceremony_pk(ceremony.id),
            sk: CEREMONY_SK.into(),
            uuid: ceremony.id,
            kind: ceremony.kind.as_str().into(),
            user_id: ceremony.user_id,
            state: ceremony.state.clone(),
            expires_at: ts(ceremony.expires_at),
            ttl: ceremony.expires_at.unix_timestamp(),
        };
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

    async fn take_ceremony(&self, id: CeremonyId) -> Result<Option<Ceremony>, StoreError> {
        // The conditional delete is the single use: of concurrent takers one gets the item.
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(ceremony_pk(id), CEREMONY_SK)))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match output {
            Ok(output) => output
                .attributes
                .filter(|item| !item.is_empty())
                .map(|item| from_item::<CeremonyItem>(item)?.into_ceremony())
                .transpose(),
            Err(error) => match classify(error, StoreError::NotFound) {
                StoreError::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<Passkey>, StoreError> {
        self.passkey_items(user_id).await
    }

    async fn add_passkey(&self, passkey: &Passkey) -> Result<(), StoreError> {
        let claim = ClaimItem {
            pk: claim_pk(&passkey.credential_id),
            sk: CLAIM_SK.into(),
            user_id: passkey.user_id,
            passkey_id: passkey.id,
        };
        let count = TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(user_pk(passkey.user_id), COUNT_SK)))
                    .update_expression("SET #c = if_not_exists(#c, :zero) + :one")
                    .condition_expression("attribute_not_exists(#c) OR #c < :max")
                    .expression_attribute_names("#c", "count")
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":max", n(MAX_PASSKEYS))
                    .build()
                    .map_err(backend)?,
            )
            .build();
        let items = vec![
            put(
                &self.table,
                to_item(&PasskeyItem::from_passkey(passkey))?,
                "attribute_not_exists(pk)",
                None,
            )?,
            put(
                &self.table,
                to_item(&claim)?,
                "attribute_not_exists(pk)",
                None,
            )?,
            count,
        ];
        // A conflicting transaction (the same credential or the same user's count at the same
        // moment) is retried: the retry then meets the other's outcome in its conditions.
        for _ in 0..3 {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let Err(error) = result else {
                return Ok(());
            };
            match transaction_error(error, |index| match index {
                1 => StoreError::CredentialTaken,
                2 => StoreError::TooManyPasskeys,
                usize::MAX => StoreError::NotFound,
                _ => StoreError::VersionConflict,
            }) {
                StoreError::NotFound => continue,
                other => return Err(other),
            }
        }
        Err(StoreError::VersionConflict)
    }

    async fn find_passkey_by_credential(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<Passkey>, StoreError> {
        let Some(claim) = self
            .get_consistent::<ClaimItem>(claim_pk(credential_id), CLAIM_SK)
            .await?
        else {
            return Ok(None);
        };
        self.get_passkey(claim.user_id, claim.passkey_id).await
    }

    async fn save_passkey_use(
        &self,
        passkey: &Passkey,
        previous_counter: u32,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&PasskeyItem::from_passkey(passkey))?))
            .condition_expression("attribute_exists(pk) AND #counter = :previous")
            .expression_attribute_names("#counter", "counter")
            .expression_attribute_values(":previous", n(previous_counter))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match classify(error, StoreError::VersionConflict) {
                StoreError::VersionConflict
                    if self
                        .get_passkey(passkey.user_id, passkey.id)
                        .await?
                        .is_none() =>
                {
                    Err(StoreError::NotFound)
                }
                other => Err(other),
            },
        }
    }

    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> Result<(), StoreError> {
        let passkey = self
            .get_passkey(user_id, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let count = TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(user_pk(user_id), COUNT_SK)))
                    .update_expression("ADD #c :minus")
                    .expression_attribute_names("#c", "count")
                    .expression_attribute_values(":minus", n(-1))
                    .build()
                    .map_err(backend)?,
            )
            .build();
        self.client
            .transact_write_items()
            .transact_items(delete(
                &self.table,
                key(user_pk(user_id), passkey_sk(id)),
                Some("attribute_exists(pk)"),
            )?)
            .transact_items(delete(
                &self.table,
                key(claim_pk(&passkey.credential_id), CLAIM_SK),
                None,
            )?)
            .transact_items(count)
            .send()
            .await
            .map_err(|error| transaction_error(error, |_| StoreError::NotFound))?;
        Ok(())
    }

    async fn delete_all_passkeys(&self, user_id: UserId) -> Result<(), StoreError> {
        let passkeys = self.passkey_items(user_id).await?;
        // At most MAX_PASSKEYS passkeys: their items, claims and the count fit one transaction.
        let mut items = vec![delete(&self.table, key(user_pk(user_id), COUNT_SK), None)?];
        for passkey in &passkeys {
            items.push(delete(
                &self.table,
                key(user_pk(user_id), passkey_sk(passkey.id)),
                None,
            )?);
            items.push(delete(
                &self.table,
                key(claim_pk(&passkey.credential_id), CLAIM_SK),
                None,
            )?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|error| transaction_error(error, |_| StoreError::VersionConflict))?;
        Ok(())
    }
}

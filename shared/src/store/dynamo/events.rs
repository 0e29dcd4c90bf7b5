//! `SecurityEventStore` on DynamoDB: an event sits in its user's partition
//! (`USER#<uuid>`, `EVENT#<createdAt>#<uuid>`) with a `ttl` 365 days on, so a user's events are
//! one `Query`, newest first. Expiry is in the sort key, so reads skip expired events by key
//! (DynamoDB Local never runs TTL, and real TTL is lazy).

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    DynamoStore, Item, backend, classify, from_item, key, parse_ts, put, s, to_item, ts, user_pk,
};
use crate::domain::ids::{EventId, SessionId, UserId};
use crate::domain::security_event::{
    Actor, EventType, Origin, RETENTION, SecurityEvent, SecurityEventStore,
};
use crate::domain::{ListStart, StoreError};

const SK_PREFIX: &str = "EVENT#";
/// Above every `EVENT#<timestamp>…` key: timestamps start with a digit, `~` sorts after them.
const SK_END: &str = "EVENT#~";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventItem {
    pk: String,
    sk: String,
    uuid: EventId,
    user_id: UserId,
    #[serde(rename = "type")]
    kind: EventType,
    created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_id: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<Actor>,
    ttl: i64,
}

impl EventItem {
    fn of(event: &SecurityEvent) -> Self {
        Self {
            pk: user_pk(event.user_id),
            sk: format!("{SK_PREFIX}{}", event.sort_key()),
            uuid: event.id,
            user_id: event.user_id,
            kind: event.kind,
            created_at: ts(event.created_at),
            session_id: event.session_id,
            ip_address: event.origin.ip_address.clone(),
            user_agent: event.origin.user_agent.clone(),
            actor: event.actor,
            ttl: event.expires_at().unix_timestamp(),
        }
    }

    fn into_event(self) -> Result<SecurityEvent, StoreError> {
        Ok(SecurityEvent {
            id: self.uuid,
            user_id: self.user_id,
            kind: self.kind,
            created_at: parse_ts(&self.created_at)?,
            session_id: self.session_id,
            origin: Origin {
                ip_address: self.ip_address,
                user_agent: self.user_agent,
            },
            actor: self.actor,
        })
    }
}

/// The put of `event`, to join the transaction of the change it records.
pub fn put_event(table: &str, event: &SecurityEvent) -> Result<TransactWriteItem, StoreError> {
    put(
        table,
        to_item(&EventItem::of(event))?,
        "attribute_not_exists(pk)",
        None,
    )
}

/// The delete of `event`, to join the transaction that withdraws it (an attempt recorded as
/// failed that turned out right).
pub fn delete_event(table: &str, event: &SecurityEvent) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .delete(
            aws_sdk_dynamodb::types::Delete::builder()
                .table_name(table)
                .set_key(Some(key(
                    user_pk(event.user_id),
                    format!("{SK_PREFIX}{}", event.sort_key()),
                )))
                .build()
                .map_err(backend)?,
        )
        .build())
}

impl DynamoStore {
    /// The user's unexpired events, newest first.
    fn event_query(&self, user: UserId, now: OffsetDateTime) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":from", s(format!("{SK_PREFIX}{}", ts(now - RETENTION))))
            .expression_attribute_values(":to", s(SK_END))
            .scan_index_forward(false)
    }

    /// The key to continue after the `count` newest events (`None`: there are no more),
    /// reading keys only.
    async fn skip_events(
        &self,
        user: UserId,
        mut count: u64,
        now: OffsetDateTime,
    ) -> Result<Option<Item>, StoreError> {
        let mut start = None;
        while count > 0 {
            let output = self
                .event_query(user, now)
                .projection_expression("#pk, #sk")
                .limit(count.min(1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            count = count.saturating_sub(output.count as u64);
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(None),
            }
        }
        Ok(start)
    }
}

#[async_trait]
impl SecurityEventStore for DynamoStore {
    async fn record(&self, event: &SecurityEvent) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&EventItem::of(event))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify(e, StoreError::VersionConflict))?;
        Ok(())
    }

    async fn count_events(&self, user: UserId, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.count(self.event_query(user, now)).await
    }

    async fn list_events(
        &self,
        user: UserId,
        start: ListStart,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        let mut start = match start {
            ListStart::After(sort_key) => {
                Some(key(user_pk(user), format!("{SK_PREFIX}{sort_key}")))
            }
            ListStart::Skip(0) => None,
            ListStart::Skip(count) => match self.skip_events(user, count, now).await? {
                Some(key) => Some(key),
                None => return Ok(Vec::new()),
            },
        };
        let mut events = Vec::new();
        while events.len() < limit {
            let output = self
                .event_query(user, now)
                .limit((limit - events.len()).min(1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            for item in output.items.unwrap_or_default() {
                events.push(from_item::<EventItem>(item)?.into_event()?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(events)
    }
}

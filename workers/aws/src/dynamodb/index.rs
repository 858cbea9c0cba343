//! The console's index table `<prefix>-index` (partition key `pk`, sort key `sk`, both S).
//!
//! - Images by label: `pk = label#<name, lowercased>`, `sk = <labeled_at>#<image id>`: one item
//!   per image and label *or parent* name, so `Animal` finds cats and dogs with one Query, newest
//!   first, paged. Keys come from the `ImageLabeled` message, so a redelivery rewrites the same
//!   items rather than adding any.
//! - Completed messages per stage and minute: `pk = rate#<stage>`, `sk = <YYYY-MM-DDTHH:MM>`,
//!   `count` added to by every replica; `expires_at` lets DynamoDB's TTL drop old minutes.
//! - The object ledger: `pk = object#<bucket>/<key>`, `sk = object`, with `history` (the key's
//!   latest events as JSON, [`KeyHistory`]: at most `LEDGER_WINDOW` of them, under 4 KB
//!   whatever the key's history) and `version` (bumped by every change, the condition of the
//!   next write).
use std::{collections::HashMap, time::Duration};

use aws_sdk_dynamodb::{
    operation::put_item::PutItemError,
    types::{
        AttributeValue, DeleteRequest, PutRequest, ReturnValuesOnConditionCheckFailure,
        WriteRequest,
    },
    Client,
};
use imgflow_catalog::{
    keys::{
        label_changes, label_partitions, merge_newest, object_pk, rate_pk, LabelEntry, OBJECT_SK,
    },
    ports::{LabelIndex, ThroughputLog},
};
use imgflow_runtime::{
    ledger::{Decision, KeyChange, KeyHistory},
    ports::{ObjectLedger, StoredLabels},
    PortError, PortErrorKind,
};

use super::{dynamodb_error, query_newest, Partition};

/// Entries per BatchWriteItem call (DynamoDB's limit).
const BATCH_WRITE_MAX: usize = 25;
/// How long a per-minute throughput item lives.
const RATE_TTL: Duration = Duration::from_secs(2 * 24 * 3600);

/// Images under a label, newest first: `(image id, labeled_at)` pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelHits {
    /// `(image id, labeled_at)`, newest first.
    pub hits: Vec<(String, String)>,
    /// The sort key to continue after, when there may be more.
    pub next: Option<String>,
}

/// The index table `<prefix>-index`.
#[derive(Debug, Clone)]
pub struct IndexTable {
    client: Client,
    table: String,
}

impl IndexTable {
    /// The table `table` on `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn name(&self) -> &str {
        &self.table
    }

    /// Writes `put` and deletes `delete` (entries of labels an image no longer has). Both are
    /// idempotent, so a failed call is simply retried with the message.
    async fn write_entries(
        &self,
        put: &[LabelEntry],
        delete: &[LabelEntry],
    ) -> Result<(), PortError> {
        let puts = put.iter().map(|e| {
            let (pk, sk) = e.key();
            put_request(vec![
                ("pk", s(pk)),
                ("sk", s(sk)),
                ("name", s(e.name.clone())),
                ("image_id", s(e.image_id.clone())),
                ("labeled_at", s(e.labeled_at.clone())),
                ("confidence", AttributeValue::N(e.confidence.to_string())),
            ])
        });
        let deletes = delete.iter().map(|e| {
            let (pk, sk) = e.key();
            WriteRequest::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .set_key(Some(key(pk, sk)))
                        .build()
                        .expect("key is set"),
                )
                .build()
        });
        let requests: Vec<WriteRequest> = puts.chain(deletes).collect();
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            self.batch_write(chunk.to_vec()).await?;
        }
        Ok(())
    }

    pub(super) async fn batch_write(
        &self,
        mut requests: Vec<WriteRequest>,
    ) -> Result<(), PortError> {
        // Unprocessed items are DynamoDB shedding load: back off and resend only those.
        for attempt in 0..6u32 {
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| {
                    dynamodb_error(format!("dynamodb:BatchWriteItem {}", self.table), e)
                })?;
            requests = output
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        Err(PortError::new(
            PortErrorKind::Throttled,
            format!("dynamodb:BatchWriteItem {}", self.table),
            format!("{} label entries still unprocessed", requests.len()),
        ))
    }

    /// Up to `limit` images with label (or parent) `name`, newest first, continuing below the
    /// sort key `after` from a previous page: one Query per shard of the label, at once,
    /// merged.
    pub async fn images_with_label(
        &self,
        name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<LabelHits, PortError> {
        let limit = limit.clamp(1, 1000);
        let pages = futures::future::try_join_all(label_partitions(name).into_iter().map(|pk| {
            let partition = Partition {
                table: &self.table,
                index: None,
                key: ("pk", pk),
                sort_key: "sk",
            };
            query_newest(&self.client, partition, after, limit, |item| {
                Some((string(item, "image_id")?, string(item, "labeled_at")?))
            })
        }))
        .await?;
        let (hits, next) = merge_newest(pages, limit);
        Ok(LabelHits { hits, next })
    }

    /// `stage`'s completed messages per minute from `since` (`YYYY-MM-DDTHH:MM`) on, oldest
    /// first; minutes without any are absent.
    pub async fn completed_since(
        &self,
        stage: &str,
        since: &str,
    ) -> Result<Vec<(String, u64)>, PortError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk >= :since")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(rate_pk(stage)))
            .expression_attribute_values(":since", s(since.to_owned()))
            .send()
            .await
            .map_err(|e| dynamodb_error(format!("dynamodb:Query {} rate", self.table), e))?;
        Ok(output
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| {
                let count = item.get("count")?.as_n().ok()?.parse().ok()?;
                Some((string(&item, "sk")?, count))
            })
            .collect())
    }
}

/// A BatchWriteItem put of `item`.
pub(super) fn put_request(item: Vec<(&str, AttributeValue)>) -> WriteRequest {
    let item: HashMap<String, AttributeValue> =
        item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("item is set"),
        )
        .build()
}

fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    [("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))].into()
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

impl LabelIndex for IndexTable {
    async fn index_labels(
        &self,
        image_id: &str,
        current: &StoredLabels,
        replaced: Option<&StoredLabels>,
    ) -> Result<(), PortError> {
        let (put, delete) = label_changes(image_id, current, replaced);
        self.write_entries(&put, &delete).await
    }
}

impl ThroughputLog for IndexTable {
    async fn add_completed(&self, stage: &str, minute: &str, count: u64) -> Result<(), PortError> {
        let expires = chrono::Utc::now().timestamp() + RATE_TTL.as_secs() as i64;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(rate_pk(stage), minute.to_owned())))
            .update_expression("ADD #count :n SET #expires_at = :expires")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":n", AttributeValue::N(count.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(expires.to_string()))
            .send()
            .await
            .map_err(|e| dynamodb_error(format!("dynamodb:UpdateItem {} rate", self.table), e))?;
        Ok(())
    }
}

/// How many times a ledger write is tried against concurrent writers of the same key.
const LEDGER_ATTEMPTS: u32 = 8;

impl IndexTable {
    /// The ledger item as it is now (a consistent read).
    async fn ledger_item(
        &self,
        item_key: &HashMap<String, AttributeValue>,
        key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                dynamodb_error(format!("dynamodb:GetItem {} object {key}", self.table), e)
            })?;
        Ok(read.item)
    }
}

impl ObjectLedger for IndexTable {
    /// The event placed in the key's history and written on condition of the version it was
    /// placed in. A creation does not read the history first: a key's first event (nearly
    /// every upload) is placed in an empty history and written if the item does not exist, one
    /// request; a refused write answers the item as it is (`ReturnValuesOnConditionCheckFailure`),
    /// and the event is placed in that and written again. A removal, whose key has an item,
    /// reads it first: a refused write is billed as a write of the item (up to 4 KB), a
    /// consistent read of it as half a read. Writers of one key take turns, none overwrites
    /// another's event.
    async fn record(
        &self,
        bucket: &str,
        key: &str,
        sequencer: Option<&str>,
        event_time: &str,
        change: KeyChange<'_>,
    ) -> Result<Decision, PortError> {
        let item_key = self::key(object_pk(bucket, key), OBJECT_SK.into());
        let what = || format!("dynamodb:PutItem {} object {key}", self.table);
        // The item as last seen: for a creation, none until a refused write says otherwise.
        let mut current = match change {
            KeyChange::Created(_) => None,
            KeyChange::Removed => self.ledger_item(&item_key, key).await?,
        };
        // One more write than the attempts: the first is a guess, not a turn taken.
        for attempt in 0..=LEDGER_ATTEMPTS {
            let exists = current.is_some();
            // An item without `history` is a ledger of the earlier format (every id ever
            // created, the latest sequencer): its ids' images were decided when their events
            // came; the history starts here, and the item is taken over.
            let stored = current.as_ref().and_then(|item| string(item, "history"));
            let mut history: KeyHistory = match &stored {
                Some(json) => serde_json::from_str(json).map_err(|e| {
                    PortError::new(PortErrorKind::Fatal, what(), format!("stored history: {e}"))
                })?,
                None => KeyHistory::default(),
            };
            let before = history.version;
            let decision = history.record(sequencer, event_time, change);
            if history.version == before && stored.is_some() {
                return Ok(decision);
            }
            let mut item = item_key.clone();
            let json = serde_json::to_string(&history).expect("a history serializes");
            item.insert("history".into(), s(json));
            item.insert(
                "version".into(),
                AttributeValue::N(history.version.to_string()),
            );
            let request = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let request = match (&stored, exists) {
                (Some(_), _) => request
                    .condition_expression("#version = :version")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":version", AttributeValue::N(before.to_string())),
                (None, true) => request
                    .condition_expression("attribute_not_exists(#history)")
                    .expression_attribute_names("#history", "history"),
                (None, false) => request.condition_expression("attribute_not_exists(pk)"),
            };
            match request.send().await {
                Ok(_) => return Ok(decision),
                Err(e) => match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(_))
                        if attempt == LEDGER_ATTEMPTS =>
                    {
                        break
                    }
                    Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                        // The key had events already (the first guess), or another event on it
                        // was recorded meanwhile: place this one in the history as it is now.
                        current = match &refused.item {
                            Some(item) => Some(item.clone()),
                            // An endpoint that does not answer the item: read it.
                            None => self.ledger_item(&item_key, key).await?,
                        };
                        if attempt > 0 {
                            // Writers racing on one key: a short, jittered pause.
                            let pause = rand::random_range(5..20) << attempt.min(4);
                            tokio::time::sleep(Duration::from_millis(pause)).await;
                        }
                    }
                    _ => return Err(dynamodb_error(what(), e)),
                },
            }
        }
        Err(PortError::new(
            PortErrorKind::Retryable,
            what(),
            format!("{LEDGER_ATTEMPTS} concurrent writers of the key won first"),
        ))
    }
}

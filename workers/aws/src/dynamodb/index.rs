//! The console's index table `<prefix>-index` (partition key `pk`, sort key `sk`, both S).
//!
//! - Images by label: `pk = label#<name, lowercased>`, `sk = <labeled_at>#<image id>`: one item
//!   per image and label *or parent* name, so `Animal` finds cats and dogs with one Query, newest
//!   first, paged. Keys come from the `ImageLabeled` message, so a redelivery rewrites the same
//!   items rather than adding any.
//! - Completed messages per stage and minute: `pk = rate#<stage>`, `sk = <YYYY-MM-DDTHH:MM>`,
//!   `count` added to by every replica; `expires_at` lets DynamoDB's TTL drop old minutes.
//! - The object ledger: `pk = object#<bucket>/<key>`, `sk = object`, with `image_ids` (a
//!   string set of every id created under the key), `sequencer` (the latest sequenced event's
//!   [`order_key`]) and `deleted` (whether that event was a deletion).
use std::{collections::HashMap, time::Duration};

use aws_sdk_dynamodb::{
    types::{AttributeValue, DeleteRequest, PutRequest, ReturnValue, WriteRequest},
    Client,
};
use imgflow_catalog::{
    keys::{
        label_changes, label_partitions, merge_newest, object_pk, rate_pk, LabelEntry, OBJECT_SK,
    },
    ports::{LabelIndex, ThroughputLog},
};
use imgflow_messages::order_key;
use imgflow_runtime::{
    ports::{ObjectLedger, ObjectOrder, StoredLabels},
    PortError, PortErrorKind,
};

use super::{dynamodb_error, is_condition_failure_update, query_newest, Partition};

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

    /// Writes `put` and deletes `delete` (entries of labels an image no longer has). Both are
    /// idempotent, so a failed call is simply retried with the message.
    async fn write_entries(
        &self,
        put: &[LabelEntry],
        delete: &[LabelEntry],
    ) -> Result<(), PortError> {
        let puts = put.iter().map(|e| {
            let (pk, sk) = e.key();
            let item = [
                ("pk", s(pk)),
                ("sk", s(sk)),
                ("name", s(e.name.clone())),
                ("image_id", s(e.image_id.clone())),
                ("labeled_at", s(e.labeled_at.clone())),
                ("confidence", AttributeValue::N(e.confidence.to_string())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .expect("item is set"),
                )
                .build()
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

    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), PortError> {
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

impl IndexTable {
    /// One ledger update; `None` when its condition failed.
    async fn ledger_update(
        &self,
        bucket: &str,
        key: &str,
        expression: &str,
        condition: Option<&str>,
        values: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        let names = [
            ("#image_ids", "image_ids"),
            ("#sequencer", "sequencer"),
            ("#deleted", "deleted"),
        ];
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(object_pk(bucket, key), OBJECT_SK.into())))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(Some(
                names
                    .iter()
                    .filter(|(n, _)| {
                        expression.contains(n) || condition.is_some_and(|c| c.contains(n))
                    })
                    .map(|(n, a)| (n.to_string(), a.to_string()))
                    .collect(),
            ))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
            Err(e) if is_condition_failure_update(&e) => Ok(None),
            Err(e) => Err(dynamodb_error(
                format!("dynamodb:UpdateItem {} object {key}", self.table),
                e,
            )),
        }
    }
}

/// Newer-or-equal: an equal sequencer is the same event again.
const IN_ORDER: &str = "attribute_not_exists(#sequencer) OR #sequencer <= :sequencer";

impl ObjectLedger for IndexTable {
    async fn object_created(
        &self,
        bucket: &str,
        key: &str,
        image_id: &str,
        sequencer: Option<&str>,
    ) -> Result<ObjectOrder, PortError> {
        let id = (
            ":id".to_owned(),
            AttributeValue::Ss(vec![image_id.to_owned()]),
        );
        let Some(sequencer) = sequencer.map(order_key) else {
            let values = [id].into();
            self.ledger_update(bucket, key, "ADD #image_ids :id", None, values)
                .await?;
            return Ok(ObjectOrder::Current);
        };
        let values = [
            id.clone(),
            (":sequencer".to_owned(), s(sequencer)),
            (":false".to_owned(), AttributeValue::Bool(false)),
        ]
        .into();
        let expression = "ADD #image_ids :id SET #sequencer = :sequencer, #deleted = :false";
        if self
            .ledger_update(bucket, key, expression, Some(IN_ORDER), values)
            .await?
            .is_some()
        {
            return Ok(ObjectOrder::Current);
        }
        // A later event is recorded: still remember the id (a later deletion must find it).
        let later = self
            .ledger_update(bucket, key, "ADD #image_ids :id", None, [id].into())
            .await?
            .unwrap_or_default();
        Ok(match later.get("deleted") {
            Some(AttributeValue::Bool(true)) => ObjectOrder::LaterDeleted,
            _ => ObjectOrder::LaterCreated,
        })
    }

    async fn object_deleted(
        &self,
        bucket: &str,
        key: &str,
        sequencer: Option<&str>,
    ) -> Result<Option<Vec<String>>, PortError> {
        let truth = (":true".to_owned(), AttributeValue::Bool(true));
        let item = match sequencer.map(order_key) {
            Some(sequencer) => {
                let values = [truth, (":sequencer".to_owned(), s(sequencer))].into();
                let expression = "SET #sequencer = :sequencer, #deleted = :true";
                self.ledger_update(bucket, key, expression, Some(IN_ORDER), values)
                    .await?
            }
            None => {
                self.ledger_update(bucket, key, "SET #deleted = :true", None, [truth].into())
                    .await?
            }
        };
        Ok(item.map(|item| match item.get("image_ids") {
            Some(AttributeValue::Ss(ids)) => ids.clone(),
            _ => Vec::new(),
        }))
    }
}

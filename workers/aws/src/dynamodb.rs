//! The `ImageTable` port on DynamoDB.
//!
//! Items are written from [`ImageRecord`] through JSON: numbers become `N` values (DynamoDB's
//! decimal strings; no float or Decimal workaround), strings `S`, lists `L`, maps `M`. Every
//! write is conditional, so redelivered and out-of-order messages are harmless.
use std::collections::HashMap;

use std::sync::Arc;

use aws_sdk_dynamodb::{
    error::SdkError,
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue},
    Client,
};
use imgflow_messages::{ImageLabeled, ImageRecord, ImageRef, ImageStatus, Label};
use serde::Serialize;

use super::{
    index::{label_entries, IndexTable},
    port_error,
};
use imgflow_runtime::{
    ports::{ImageTable, LabelClaim, WriteOutcome, CLAIM_DONE},
    PortError, PortErrorKind,
};

/// Table `<prefix>-images`, partition key `id` (S), with two keys-only global secondary
/// indexes for the console, both sorted by `received_key` (`<received_at>#<id>`):
/// `by_day` (partition `day`, `YYYY-MM-DD` of `received_at`) and `by_status` (partition
/// `status_day`, `<status>#<day>`). Partitioning by day keeps any one index partition to a
/// day's images; the key attributes are derived on every write, so they never disagree with
/// `status`.
#[derive(Debug, Clone)]
pub struct DynamoImageTable {
    pub(super) client: Client,
    pub(super) table: String,
    /// Where `record_labels` indexes labels; `None` leaves the index alone.
    pub(super) index: Option<IndexTable>,
    /// When the table was created (`YYYY-MM-DD`): the gallery never walks back before it.
    pub(super) created_day: Arc<tokio::sync::OnceCell<String>>,
}

/// What `reindex` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// Items read.
    pub items: usize,
    /// Items given their gallery keys.
    pub keyed: usize,
    /// Labeled items whose label entries were (re)written.
    pub labeled: usize,
}

/// The `by_day` index.
pub const BY_DAY_INDEX: &str = "by_day";
/// The `by_status` index.
pub const BY_STATUS_INDEX: &str = "by_status";

/// `day` of a `received_at`.
pub fn day_of(received_at: &str) -> &str {
    received_at.get(..10).unwrap_or(received_at)
}

/// `received_key` of an image.
pub fn received_key(received_at: &str, id: &str) -> String {
    format!("{received_at}#{id}")
}

/// `status_day` of an image.
pub fn status_day(status: ImageStatus, received_at: &str) -> String {
    format!("{status}#{}", day_of(received_at))
}

impl DynamoImageTable {
    /// The table `table` on `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            index: None,
            created_day: Arc::default(),
        }
    }

    /// Also maintains (and searches) the label index in table `index_table`.
    pub fn with_index(mut self, index_table: impl Into<String>) -> Self {
        self.index = Some(IndexTable::new(self.client.clone(), index_table));
        self
    }

    /// Whether the table answers this caller: a read of a key that never exists, so it needs
    /// only the `dynamodb:GetItem` every reader has. For readiness checks.
    pub async fn reachable(&self) -> Result<(), PortError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S("readyz".into()))
            .send()
            .await
            .map_err(|e| port_error(format!("dynamodb:GetItem {}", self.table), e))?;
        Ok(())
    }

    /// One page of a Scan from `start`: its records (items that are not records are logged and
    /// skipped) and where the next page starts, if any.
    async fn scan_page(
        &self,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<(Vec<ImageRecord>, Option<HashMap<String, AttributeValue>>), PortError> {
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| port_error(format!("dynamodb:Scan {}", self.table), e))?;
        let records = page
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| {
                item_to_record(item)
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, "skipping an item that is not an image record")
                    })
                    .ok()
            })
            .collect();
        Ok((records, page.last_evaluated_key))
    }

    /// Up to `limit` items, newest `received_at` first. Scans the table: for tests and the
    /// console benchmark's comparison, not for request paths (the console reads its indexes).
    pub async fn recent(&self, limit: usize) -> Result<Vec<ImageRecord>, PortError> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let (page, next) = self.scan_page(start).await?;
            records.extend(page);
            start = next;
            if start.is_none() {
                break;
            }
        }
        records.sort_by(|a, b| b.received_at.cmp(&a.received_at).then(a.key.cmp(&b.key)));
        records.truncate(limit);
        Ok(records)
    }

    /// Gives items written before the console its index keys and label entries: the one
    /// operator's pass after upgrading (`imgflow reindex`). Scans the table; idempotent, so it
    /// can be interrupted and run again.
    pub async fn reindex(&self) -> Result<ReindexReport, PortError> {
        let mut report = ReindexReport::default();
        let mut start = None;
        loop {
            let (records, next) = self.scan_page(start).await?;
            for record in records {
                report.items += 1;
                if self.set_index_keys(&record).await? == WriteOutcome::Written {
                    report.keyed += 1;
                }
                if let (Some(index), Some(labeled_at), Some(labels)) =
                    (&self.index, &record.labeled_at, &record.labels)
                {
                    index
                        .write_labels(&label_entries(&record.id, labeled_at, labels), &[])
                        .await?;
                    report.labeled += 1;
                }
            }
            start = next;
            if start.is_none() {
                return Ok(report);
            }
        }
    }

    /// Writes the console's index keys of an item that lacks them (an item from before the
    /// console), unless a stage changed its status meanwhile (its own write set the keys).
    async fn set_index_keys(&self, record: &ImageRecord) -> Result<WriteOutcome, PortError> {
        let mut update = Update::default();
        update.set("day", s(day_of(&record.received_at)));
        update.set(
            "received_key",
            s(&received_key(&record.received_at, &record.id)),
        );
        update.set(
            "status_day",
            s(&status_day(record.status, &record.received_at)),
        );
        update.condition(
            "attribute_not_exists(#status_day) AND #status = :status",
            &[("status", s(record.status.as_str()))],
        );
        self.update(&record.id, update, "reindex").await
    }

    async fn update(
        &self,
        id: &str,
        update: Update,
        what: &str,
    ) -> Result<WriteOutcome, PortError> {
        Ok(self
            .update_returning(id, update, what, ReturnValue::None)
            .await?
            .0)
    }

    /// Like `update`, also answering what `returning` asks for (`UpdatedOld`: the updated
    /// attributes' previous values).
    async fn update_returning(
        &self,
        id: &str,
        update: Update,
        what: &str,
        returning: ReturnValue,
    ) -> Result<(WriteOutcome, HashMap<String, AttributeValue>), PortError> {
        let (expression, names, values, condition) = update.build();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_owned()))
            .update_expression(expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            // DynamoDB rejects an empty values map.
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values(returning)
            .send()
            .await;
        match result {
            Ok(output) => Ok((WriteOutcome::Written, output.attributes.unwrap_or_default())),
            Err(e) if is_condition_failure_update(&e) => {
                Ok((WriteOutcome::Superseded, HashMap::new()))
            }
            Err(e) => Err(port_error(format!("dynamodb:UpdateItem {what} {id}"), e)),
        }
    }

    /// Indexes the labels just written and drops the entries of the labels they replaced.
    async fn index_labels(
        &self,
        labeled: &ImageLabeled,
        old: HashMap<String, AttributeValue>,
    ) -> Result<(), PortError> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        let id = &labeled.image.image_id;
        let new = label_entries(id, &labeled.labeled_at, &labeled.labels);
        let old_labeled_at = old.get("labeled_at").and_then(|v| v.as_s().ok());
        let old_labels: Vec<Label> = old
            .get("labels")
            .cloned()
            .and_then(|v| serde_json::from_value(to_json(v)).ok())
            .unwrap_or_default();
        let stale: Vec<_> = match old_labeled_at {
            Some(at) => label_entries(id, at, &old_labels)
                .into_iter()
                .filter(|o| !new.iter().any(|n| n.key() == o.key()))
                .collect(),
            None => Vec::new(),
        };
        index.write_labels(&new, &stale).await
    }
}

fn is_condition_failure_update(
    e: &SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    matches!(
        e.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

/// Ingest's attributes that a record may lack: removed when absent, so a re-ingested image
/// (a new verdict for the same version) keeps no stale reason or size from the last one.
const INGEST_OPTIONAL: [&str; 7] = [
    "version_id",
    "content_type",
    "size",
    "width",
    "height",
    "reason",
    "accepted_at",
];

impl ImageTable for DynamoImageTable {
    async fn record_ingest(&self, record: &ImageRecord) -> Result<WriteOutcome, PortError> {
        // An update of ingest's own attributes, not a PutItem: a duplicate event arriving while
        // the image is being labelled must not wipe the label claim (or a kept detection), which
        // would grant a second claim and a second paid detector call.
        let mut update = Update::default();
        for (attribute, value) in record_to_item(record)? {
            if attribute != "id" {
                update.set(&attribute, value);
            }
        }
        for attribute in INGEST_OPTIONAL {
            if !update.names.contains_key(&format!("#{attribute}")) {
                update.remove(attribute);
            }
        }
        update.condition(
            "attribute_not_exists(#id) OR #status <> :labeled",
            &[("labeled", s(ImageStatus::Labeled.as_str()))],
        );
        self.update(&record.id, update, "ingest").await
    }

    async fn record_failure(
        &self,
        image: &ImageRef,
        status: ImageStatus,
        reason: &str,
    ) -> Result<WriteOutcome, PortError> {
        let mut update = Update::default();
        update.set("status", s(status.as_str()));
        update.set("status_day", s(&status_day(status, &image.received_at)));
        update.set("reason", s(reason));
        update.condition(
            "attribute_exists(#id) AND #status <> :labeled",
            &[("labeled", s(ImageStatus::Labeled.as_str()))],
        );
        self.update(&image.image_id, update, status.as_str()).await
    }

    async fn record_labels(
        &self,
        labeled: &ImageLabeled,
        stored_at: &str,
    ) -> Result<WriteOutcome, PortError> {
        let image = &labeled.image;
        let mut update = Update::default();
        update.set("status", s(ImageStatus::Labeled.as_str()));
        update.set(
            "status_day",
            s(&status_day(ImageStatus::Labeled, &image.received_at)),
        );
        update.set_if_not_exists("day", s(day_of(&image.received_at)));
        update.set_if_not_exists(
            "received_key",
            s(&received_key(&image.received_at, &image.image_id)),
        );
        update.set("stored_at", s(stored_at));
        update.set("labels", to_attribute(&labeled.labels)?);
        update.set("detector", s(&labeled.detector));
        update.set("label_model_version", s(&labeled.label_model_version));
        update.set("labeled_at", s(&labeled.labeled_at));
        // Should the ingest write have been lost, the item still names its object.
        update.set_if_not_exists("bucket", s(&image.bucket));
        update.set_if_not_exists("key", s(&image.key));
        update.set_if_not_exists("etag", s(&image.etag));
        update.set_if_not_exists("received_at", s(&image.received_at));
        update.set_if_not_exists("trace_id", s(&image.trace_id));
        if let Some(version) = &image.version_id {
            update.set_if_not_exists("version_id", s(version));
        }
        update.remove("reason");
        // Equal timestamps are the same message again: rewriting it is harmless and lets a
        // redelivery after a crash still publish downstream.
        update.condition(
            "attribute_not_exists(#labeled_at) OR #labeled_at <= :labeled_at",
            &[("labeled_at", s(&labeled.labeled_at))],
        );
        let (outcome, old) = self
            .update_returning(&image.image_id, update, "labels", ReturnValue::UpdatedOld)
            .await?;
        if outcome == WriteOutcome::Written {
            // After the item, so a failure here retries the message and the (equal-time)
            // item write again; entries never point at labels the item does not hold yet.
            self.index_labels(labeled, old).await?;
        }
        Ok(outcome)
    }

    async fn claim_labeling(
        &self,
        image_id: &str,
        detector: &str,
        token: &str,
        now: &str,
        until: &str,
    ) -> Result<LabelClaim, PortError> {
        let mut update = Update::default();
        update.set("label_claim", s(token));
        update.set("label_claim_until", s(until));
        update.condition(
            "attribute_exists(#id) \
             AND NOT (#status = :labeled AND #detector = :detector) \
             AND (attribute_not_exists(#label_claim_until) OR #label_claim_until < :now \
                  OR (#label_claim = :label_claim AND #label_claim_until <> :done))",
            &[
                ("labeled", s(ImageStatus::Labeled.as_str())),
                ("detector", s(detector)),
                ("now", s(now)),
                ("done", s(CLAIM_DONE)),
            ],
        );
        let (outcome, item) = self
            .update_returning(image_id, update, "label claim", ReturnValue::AllNew)
            .await?;
        if outcome == WriteOutcome::Written {
            return Ok(LabelClaim::Granted {
                pending: text(&item, "label_pending"),
            });
        }
        // The condition failed; one read tells which part (a rare path: duplicates only).
        Ok(match self.get_item(image_id).await? {
            Some(item) => claim_refusal(&item, detector),
            // No item: ingest's write was lost. The store stage's write creates it.
            None => LabelClaim::Granted { pending: None },
        })
    }

    async fn keep_detection(
        &self,
        image_id: &str,
        token: &str,
        labeled: &str,
    ) -> Result<(), PortError> {
        let mut update = Update::default();
        update.set("label_pending", s(labeled));
        update.condition("#label_claim = :token", &[("token", s(token))]);
        if self.update(image_id, update, "kept detection").await? == WriteOutcome::Superseded {
            // The lease ran out and a duplicate holds the image now; publishing still works,
            // only the safety net for a failed publish is missing.
            tracing::warn!(
                "the label claim passed to another message before the detection was kept"
            );
        }
        Ok(())
    }

    async fn complete_claim(&self, image_id: &str, token: &str) -> Result<(), PortError> {
        let mut update = Update::default();
        update.set("label_claim_until", s(CLAIM_DONE));
        update.remove("label_pending");
        update.condition("#label_claim = :token", &[("token", s(token))]);
        self.update(image_id, update, "label claim completion")
            .await?;
        Ok(())
    }

    async fn release_claim(&self, image_id: &str, token: &str) -> Result<(), PortError> {
        let mut update = Update::default();
        update.remove("label_claim");
        update.remove("label_claim_until");
        update.condition("#label_claim = :token", &[("token", s(token))]);
        // Superseded means another message holds the claim now: nothing of ours to release.
        self.update(image_id, update, "label claim release").await?;
        Ok(())
    }

    async fn get(&self, image_id: &str) -> Result<Option<ImageRecord>, PortError> {
        self.get_item(image_id)
            .await?
            .map(item_to_record)
            .transpose()
    }
}

impl DynamoImageTable {
    /// One item with every attribute, read consistently.
    async fn get_item(
        &self,
        image_id: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(image_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(format!("dynamodb:GetItem {image_id}"), e))?;
        Ok(output.item)
    }
}

fn text(item: &HashMap<String, AttributeValue>, attribute: &str) -> Option<String> {
    item.get(attribute)?.as_s().ok().cloned()
}

/// Why a claim's condition failed, from the item as it is now.
fn claim_refusal(item: &HashMap<String, AttributeValue>, detector: &str) -> LabelClaim {
    let labeled = text(item, "status").as_deref() == Some(ImageStatus::Labeled.as_str())
        && text(item, "detector").as_deref() == Some(detector);
    match text(item, "label_claim_until") {
        _ if labeled => LabelClaim::AlreadyLabeled,
        Some(until) if until == CLAIM_DONE => LabelClaim::Done,
        Some(until) => LabelClaim::HeldByOther { until },
        // The claim was released between the write and the read: the next try takes it.
        None => LabelClaim::HeldByOther {
            until: imgflow_runtime::clock::now_rfc3339(),
        },
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// An UpdateItem expression with every attribute name aliased, since many of ours (`key`,
/// `status`, `size`) are DynamoDB reserved words.
#[derive(Debug, Default)]
struct Update {
    sets: Vec<String>,
    removes: Vec<String>,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn name(&mut self, attribute: &str) -> String {
        let alias = format!("#{attribute}");
        self.names.insert(alias.clone(), attribute.to_owned());
        alias
    }

    fn value(&mut self, attribute: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{attribute}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let (n, v) = (self.name(attribute), self.value(attribute, value));
        self.sets.push(format!("{n} = {v}"));
    }

    fn set_if_not_exists(&mut self, attribute: &str, value: AttributeValue) {
        let (n, v) = (self.name(attribute), self.value(attribute, value));
        self.sets.push(format!("{n} = if_not_exists({n}, {v})"));
    }

    fn remove(&mut self, attribute: &str) {
        let n = self.name(attribute);
        self.removes.push(n);
    }

    /// A condition; every `#name` in it is aliased to the attribute `name`, and each value
    /// given becomes the placeholder `:name`.
    fn condition(&mut self, expression: &str, values: &[(&str, AttributeValue)]) {
        for (name, value) in values {
            self.value(name, value.clone());
        }
        let mut rest = expression;
        while let Some(at) = rest.find('#') {
            let name: String = rest[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + 1 + name.len()..];
            self.name(&name);
        }
        self.condition = Some(expression.to_owned());
    }

    fn build(
        self,
    ) -> (
        String,
        HashMap<String, String>,
        HashMap<String, AttributeValue>,
        Option<String>,
    ) {
        let mut clauses = Vec::new();
        if !self.sets.is_empty() {
            clauses.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.removes.is_empty() {
            clauses.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        (clauses.join(" "), self.names, self.values, self.condition)
    }
}

/// Converts an item into a record.
pub fn item_to_record(item: HashMap<String, AttributeValue>) -> Result<ImageRecord, PortError> {
    let json = serde_json::Value::Object(item.into_iter().map(|(k, v)| (k, to_json(v))).collect());
    serde_json::from_value(json).map_err(|e| {
        PortError::new(
            PortErrorKind::Fatal,
            "decoding an images-table item",
            e.to_string(),
        )
    })
}

/// The record's attributes plus the console indexes' keys derived from them.
fn record_to_item(record: &ImageRecord) -> Result<HashMap<String, AttributeValue>, PortError> {
    let AttributeValue::M(mut map) = to_attribute(record)? else {
        unreachable!("a record serializes to a map")
    };
    map.insert("day".into(), s(day_of(&record.received_at)));
    map.insert(
        "status_day".into(),
        s(&status_day(record.status, &record.received_at)),
    );
    map.insert(
        "received_key".into(),
        s(&received_key(&record.received_at, &record.id)),
    );
    Ok(map)
}

/// Any serializable value as an attribute. Goes through JSON text so `f32`s keep their short
/// form (`97.5`, not `97.5000000001`).
pub fn to_attribute<T: Serialize>(value: &T) -> Result<AttributeValue, PortError> {
    let text = serde_json::to_string(value)
        .map_err(|e| PortError::new(PortErrorKind::Fatal, "encoding an item", e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| PortError::new(PortErrorKind::Fatal, "encoding an item", e.to_string()))?;
    Ok(from_json(json))
}

fn from_json(value: serde_json::Value) -> AttributeValue {
    use serde_json::Value;
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(items) => AttributeValue::L(items.into_iter().map(from_json).collect()),
        Value::Object(map) => AttributeValue::M(
            map.into_iter()
                // Absent beats NULL: conditions test attribute_exists.
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, from_json(v)))
                .collect(),
        ),
    }
}

/// An attribute as JSON (numbers as JSON numbers).
pub fn to_json(value: AttributeValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        AttributeValue::S(s) => Value::String(s),
        AttributeValue::N(n) => serde_json::from_str::<serde_json::Number>(&n)
            .map(Value::Number)
            .unwrap_or(Value::String(n)),
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(items) => Value::Array(items.into_iter().map(to_json).collect()),
        AttributeValue::M(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        AttributeValue::Ss(items) => Value::Array(items.into_iter().map(Value::String).collect()),
        AttributeValue::Ns(items) => Value::Array(
            items
                .into_iter()
                .map(|n| to_json(AttributeValue::N(n)))
                .collect(),
        ),
        // Binary attributes are not part of the item contract.
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgflow_messages::{BoundingBox, Instance, Label, NamedRef};

    fn record() -> ImageRecord {
        ImageRecord {
            id: "abc".into(),
            bucket: "b".into(),
            key: "incoming/a b.png".into(),
            version_id: None,
            etag: "e".into(),
            content_type: Some("image/png".into()),
            size: Some(1234),
            width: Some(100),
            height: Some(80),
            status: ImageStatus::Labeled,
            reason: None,
            labels: Some(vec![Label {
                name: "Cat".into(),
                confidence: 97.1,
                instances: vec![Instance {
                    bounding_box: BoundingBox {
                        width: 0.5,
                        height: 0.25,
                        left: 0.1,
                        top: 0.2,
                    },
                    confidence: 97.1,
                }],
                parents: vec![NamedRef::new("Animal")],
                categories: vec![],
            }]),
            detector: Some("rekognition".into()),
            label_model_version: Some("3.0".into()),
            trace_id: None,
            received_at: "2026-11-27T03:40:11.532000Z".into(),
            accepted_at: None,
            labeled_at: None,
            stored_at: None,
        }
    }

    #[test]
    fn records_round_trip_through_items_with_numbers_as_n() {
        let item = record_to_item(&record()).unwrap();
        assert_eq!(item["size"], AttributeValue::N("1234".into()));
        assert!(
            !item.contains_key("reason"),
            "absent fields are not written as NULL"
        );
        let AttributeValue::L(labels) = &item["labels"] else {
            panic!("labels is a list")
        };
        let AttributeValue::M(cat) = &labels[0] else {
            panic!("a label is a map")
        };
        assert_eq!(cat["Confidence"], AttributeValue::N("97.1".into()));
        assert_eq!(item["status_day"], s("labeled#2026-11-27"));
        assert_eq!(item["day"], s("2026-11-27"));
        assert_eq!(
            item["received_key"],
            s("2026-11-27T03:40:11.532000Z#abc"),
            "the gallery's sort key: time, then id"
        );
        assert_eq!(item_to_record(item).unwrap(), record());
    }

    #[test]
    fn updates_alias_every_name() {
        let mut u = Update::default();
        u.set("status", s("labeled"));
        u.set_if_not_exists("key", s("k"));
        u.remove("reason");
        u.condition(
            "attribute_not_exists(#labeled_at) OR #labeled_at <= :labeled_at",
            &[("labeled_at", s("t"))],
        );
        let (expression, names, values, condition) = u.build();
        assert_eq!(
            expression,
            "SET #status = :status, #key = if_not_exists(#key, :key) REMOVE #reason"
        );
        assert_eq!(names["#labeled_at"], "labeled_at");
        assert!(values.contains_key(":labeled_at"));
        assert!(condition.unwrap().contains("<= :labeled_at"));
    }
}

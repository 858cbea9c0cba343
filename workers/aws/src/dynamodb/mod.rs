//! The DynamoDB adapters: the images table (here; its label claims in `claims`, the two
//! branches' writes and their join in `join`, the ledger's decisions on it in `lifecycle`), the console's label index, throughput and object ledger ([`index`]), the gallery's reads ([`catalog`]), the operator's `reindex` and
//! full-table reads ([`reindex`]), and the item codec they share ([`codec`]).
//!
//! Every write is conditional, so redelivered and out-of-order messages are harmless.
use std::collections::HashMap;

use aws_sdk_dynamodb::{
    error::SdkError,
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue},
    Client,
};
use imgflow_catalog::keys::{day_key, received_key, status_day};
use imgflow_messages::{ImageLabeled, ImageRecord, ImageRef, ImageStatus, Label};

use super::ModeledKind;
use claims::{claim_refusal, relabel_refusal};
use codec::{item_to_record, record_to_item, s, to_attribute, to_json, Update};
use imgflow_runtime::{
    ports::{
        Branch, CompletionClaim, Ending, GoneImage, ImageTable, Join, LabelClaim, LabelsWrite,
        Revival, StoredLabels, ThumbnailOutcome, ThumbnailWrite, WriteOutcome, CLAIM_DONE,
        RELABEL_CLAIM_PREFIX,
    },
    PortError, PortErrorKind,
};

mod calls;
pub mod catalog;
mod claims;
pub mod codec;
mod content;
pub mod index;
mod join;
mod lifecycle;
mod near;
pub mod reindex;

/// Table `<prefix>-images`, partition key `id` (S), with two keys-only global secondary
/// indexes for the console, both sorted by `received_key` (`<received_at>#<id>`):
/// `by_day` (partition `day`, `<YYYY-MM-DD of received_at>#<shard>`) and `by_status`
/// (partition `status_day`, `<status>#<day>#<shard>`). Partitioning by day and shard keeps any
/// one index partition to an eighth of a day's images (`imgflow_catalog::keys`); the key
/// attributes are derived on every write, so they never disagree with `status`.
#[derive(Debug, Clone)]
pub struct DynamoImageTable {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl DynamoImageTable {
    /// The table `table` on `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
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
            .map_err(|e| dynamodb_error(format!("dynamodb:GetItem {}", self.table), e))?;
        Ok(())
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
            Err(e) => Err(dynamodb_error(
                format!("dynamodb:UpdateItem {what} {id}"),
                e,
            )),
        }
    }
}

/// One partition of a newest-first listing: where it is, and the sort key it is ordered by.
pub(crate) struct Partition<'a> {
    pub table: &'a str,
    /// A secondary index of `table`, or the table itself.
    pub index: Option<&'a str>,
    /// The partition key's attribute and value.
    pub key: (&'a str, String),
    pub sort_key: &'a str,
}

/// Up to `limit` items of `partition`, newest first, below the sort key `after`, each mapped by
/// `item` and paired with its sort key; and whether the partition holds more. The console's
/// listings read each shard of theirs this way and merge (`keys::merge_newest`).
pub(crate) async fn query_newest<T>(
    client: &Client,
    partition: Partition<'_>,
    after: Option<&str>,
    limit: usize,
    item: impl Fn(&HashMap<String, AttributeValue>) -> Option<T>,
) -> Result<imgflow_catalog::keys::PartitionPage<T>, PortError> {
    let Partition {
        table,
        index,
        key: (key, value),
        sort_key,
    } = partition;
    let request = client
        .query()
        .table_name(table)
        .set_index_name(index.map(str::to_owned))
        .expression_attribute_names("#p", key)
        .expression_attribute_values(":p", AttributeValue::S(value))
        .scan_index_forward(false)
        .limit(limit as i32);
    let request = match after {
        Some(after) => request
            .key_condition_expression("#p = :p AND #s < :after")
            .expression_attribute_names("#s", sort_key)
            .expression_attribute_values(":after", AttributeValue::S(after.to_owned())),
        None => request.key_condition_expression("#p = :p"),
    };
    let output = request.send().await.map_err(|e| {
        dynamodb_error(
            format!("dynamodb:Query {table} {}", index.unwrap_or(key)),
            e,
        )
    })?;
    let items = output
        .items
        .unwrap_or_default()
        .iter()
        .filter_map(|found| Some((text(found, sort_key)?, item(found)?)))
        .collect();
    Ok(imgflow_catalog::keys::PartitionPage {
        items,
        more: output.last_evaluated_key.is_some(),
    })
}

/// The labels an item held before a write, from its `UPDATED_OLD` attributes.
fn replaced_labels(mut old: HashMap<String, AttributeValue>) -> Option<StoredLabels> {
    let labeled_at = old.remove("labeled_at")?.as_s().ok()?.clone();
    let labels: Vec<Label> = serde_json::from_value(to_json(old.remove("labels")?)).ok()?;
    Some(StoredLabels { labeled_at, labels })
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
const INGEST_OPTIONAL: [&str; 8] = [
    "version_id",
    "content_type",
    "size",
    "width",
    "height",
    "exif",
    "reason",
    "accepted_at",
];

impl ImageTable for DynamoImageTable {
    async fn write_verdict(&self, record: &ImageRecord) -> Result<WriteOutcome, PortError> {
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
            if !update.mentions(attribute) {
                update.remove(attribute);
            }
        }
        update.condition(
            "attribute_not_exists(#id) OR (#status <> :labeled AND #status <> :deleted AND #status <> :replaced)",
            &[
                ("labeled", s(ImageStatus::Labeled.as_str())),
                ("deleted", s(ImageStatus::Deleted.as_str())),
                ("replaced", s(ImageStatus::Replaced.as_str())),
            ],
        );
        self.update(&record.id, update, "ingest").await
    }

    async fn write_failure(
        &self,
        image: &ImageRef,
        status: ImageStatus,
        reason: &str,
    ) -> Result<WriteOutcome, PortError> {
        let mut update = Update::default();
        update.set("status", s(status.as_str()));
        update.set(
            "status_day",
            s(&status_day(status, &image.received_at, &image.image_id)),
        );
        update.set("reason", s(reason));
        update.condition(
            "attribute_exists(#id) AND #status <> :labeled AND #status <> :deleted AND #status <> :replaced",
            &[
                ("labeled", s(ImageStatus::Labeled.as_str())),
                ("deleted", s(ImageStatus::Deleted.as_str())),
                ("replaced", s(ImageStatus::Replaced.as_str())),
            ],
        );
        self.update(&image.image_id, update, status.as_str()).await
    }

    async fn write_labels(
        &self,
        labeled: &ImageLabeled,
        stored_at: &str,
    ) -> Result<LabelsWrite, PortError> {
        self.store_labels(labeled, stored_at).await
    }

    async fn write_thumbnail(
        &self,
        image_id: &str,
        outcome: &ThumbnailOutcome,
    ) -> Result<ThumbnailWrite, PortError> {
        self.store_thumbnail(image_id, outcome).await
    }

    async fn complete(
        &self,
        image_id: &str,
        branch: Branch,
        claim: &CompletionClaim,
    ) -> Result<Option<ImageRecord>, PortError> {
        self.complete_join(image_id, branch, claim).await
    }

    async fn completion_announced(&self, image_id: &str) -> Result<(), PortError> {
        self.announce_completion(image_id).await
    }

    async fn claim_labeling(
        &self,
        image_id: &str,
        detector: &str,
        token: &str,
        now: &str,
        until: &str,
    ) -> Result<LabelClaim, PortError> {
        let condition = "attribute_exists(#id) AND #status <> :deleted AND #status <> :replaced \
             AND NOT (#status = :labeled AND #detector = :detector) \
             AND (attribute_not_exists(#label_claim_until) OR #label_claim_until < :now \
                  OR (#label_claim = :label_claim AND #label_claim_until <> :done))";
        let values = [
            ("labeled", s(ImageStatus::Labeled.as_str())),
            ("detector", s(detector)),
        ];
        self.claim(image_id, token, now, until, condition, &values, |item| {
            claim_refusal(item, detector)
        })
        .await
    }

    async fn claim_relabeling(
        &self,
        image_id: &str,
        token: &str,
        now: &str,
        until: &str,
    ) -> Result<LabelClaim, PortError> {
        // Stored labels do not refuse a relabel; its own completed claim does. An upload's
        // claim is never completed (its stored labels refuse its duplicates): once the labels
        // are stored, its lease no longer holds a relabel off.
        let condition = "attribute_exists(#id) AND #status <> :deleted AND #status <> :replaced \
             AND (attribute_not_exists(#label_claim_until) OR #label_claim_until < :now \
                  OR #label_claim_until = :done OR #label_claim = :label_claim \
                  OR (#status = :labeled AND NOT begins_with(#label_claim, :relabel))) \
             AND NOT (#label_claim = :label_claim AND #label_claim_until = :done)";
        let values = [
            ("labeled", s(ImageStatus::Labeled.as_str())),
            ("relabel", s(RELABEL_CLAIM_PREFIX)),
        ];
        self.claim(
            image_id,
            token,
            now,
            until,
            condition,
            &values,
            relabel_refusal,
        )
        .await
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

    async fn get_with_kept(
        &self,
        image_id: &str,
    ) -> Result<Option<(ImageRecord, Option<String>)>, PortError> {
        let Some(item) = self.get_item(image_id).await? else {
            return Ok(None);
        };
        let kept = text(&item, "label_pending");
        Ok(Some((item_to_record(item)?, kept)))
    }

    async fn end(&self, gone: &GoneImage) -> Result<Ending, PortError> {
        self.record_end(gone).await
    }

    async fn live(&self, image_id: &str, version: u64) -> Result<Revival, PortError> {
        self.record_live(image_id, version).await
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
            .map_err(|e| dynamodb_error(format!("dynamodb:GetItem {image_id}"), e))?;
        Ok(output.item)
    }
}

fn text(item: &HashMap<String, AttributeValue>, attribute: &str) -> Option<String> {
    item.get(attribute)?.as_s().ok().cloned()
}

/// DynamoDB's modeled errors. A failed condition is not here: each write decides what it means.
impl ModeledKind for aws_sdk_dynamodb::Error {
    fn modeled_kind(&self) -> Option<PortErrorKind> {
        use aws_sdk_dynamodb::Error as E;
        Some(match self {
            E::ProvisionedThroughputExceededException(_)
            | E::RequestLimitExceeded(_)
            | E::ThrottlingException(_)
            | E::LimitExceededException(_) => PortErrorKind::Throttled,
            E::ResourceNotFoundException(_)
            | E::TableNotFoundException(_)
            | E::IndexNotFoundException(_) => PortErrorKind::NotFound,
            E::InternalServerError(_)
            | E::TransactionConflictException(_)
            | E::ReplicatedWriteConflictException(_) => PortErrorKind::Retryable,
            _ => return None,
        })
    }
}

service_error_fn!(dynamodb_error, aws_sdk_dynamodb);

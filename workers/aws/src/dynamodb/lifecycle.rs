//! The images table's side of the object ledger's decisions: an image ended (`deleted` or
//! `replaced`) or made its key's object again, each only if no newer decision is recorded
//! (`ledger_version`).
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use imgflow_messages::ImageStatus;
use imgflow_runtime::{
    ports::{gone_reason, Ending, GoneImage, Revival, WriteOutcome},
    PortError, PortErrorKind,
};

use super::{codec::s, codec::Update, replaced_labels, DynamoImageTable};

impl DynamoImageTable {
    /// [`ImageTable::end`]: the image is no longer its key's object, unless a newer decision holds.
    pub(super) async fn record_end(&self, gone: &GoneImage) -> Result<Ending, PortError> {
        let mut update = Update::default();
        update.set("status", s(gone.status.as_str()));
        update.set("reason", s(gone_reason(gone.status)));
        update.set(
            "ledger_version",
            AttributeValue::N(gone.version.to_string()),
        );
        if gone.status == ImageStatus::Deleted {
            update.set_if_not_exists("deleted_at", s(&gone.at));
        }
        // A version deleted before its creation event arrived: the item is made here, so the
        // late creation finds it gone.
        update.set_if_not_exists("bucket", s(&gone.bucket));
        update.set_if_not_exists("key", s(&gone.key));
        update.set_if_not_exists("etag", s(""));
        update.set_if_not_exists("received_at", s(&gone.at));
        // Without its index keys the item leaves the gallery's indexes (both are sparse).
        for attribute in ["day", "status_day", "received_key"] {
            update.remove(attribute);
        }
        update.condition(
            "attribute_not_exists(#ledger_version) OR #ledger_version <= :ledger_version",
            &[],
        );
        let (written, old) = self
            .update_returning(&gone.image_id, update, "end", ReturnValue::AllOld)
            .await?;
        Ok(match written {
            WriteOutcome::Written => Ending::Ended(replaced_labels(old)),
            WriteOutcome::Superseded => Ending::Newer,
        })
    }

    /// [`ImageTable::live`]: the image is its key's object; brought back if an older decision
    /// ended it.
    pub(super) async fn record_live(
        &self,
        image_id: &str,
        version: u64,
    ) -> Result<Revival, PortError> {
        let gone = [
            ("deleted", s(ImageStatus::Deleted.as_str())),
            ("replaced", s(ImageStatus::Replaced.as_str())),
        ];
        let newer_or_equal =
            "(attribute_not_exists(#ledger_version) OR #ledger_version <= :ledger_version)";
        // Two conditional writes, one of which can hold: the item is current (the common
        // case, tried first) or ended by an older decision. Should the status change between
        // them, the first is tried again.
        for _ in 0..3 {
            let mut update = Update::default();
            update.set("ledger_version", AttributeValue::N(version.to_string()));
            update.condition(
                &format!(
                    "attribute_exists(#id) AND #status <> :deleted AND #status <> :replaced \
                     AND {newer_or_equal}"
                ),
                &gone,
            );
            if self.update(image_id, update, "live").await? == WriteOutcome::Written {
                return Ok(Revival::Current);
            }
            let mut update = Update::default();
            update.set("status", s(ImageStatus::Accepted.as_str()));
            update.set("ledger_version", AttributeValue::N(version.to_string()));
            for attribute in REVIVAL_CLEARS {
                update.remove(attribute);
            }
            update.condition(
                &format!("(#status = :deleted OR #status = :replaced) AND {newer_or_equal}"),
                &gone,
            );
            if self.update(image_id, update, "revival").await? == WriteOutcome::Written {
                return Ok(Revival::Revived);
            }
            match self.get_item(image_id).await? {
                None => return Ok(Revival::Newer),
                Some(item) => {
                    let recorded = item
                        .get("ledger_version")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if recorded.is_some_and(|v| v > version) {
                        return Ok(Revival::Newer);
                    }
                }
            }
        }
        Err(PortError::new(
            PortErrorKind::Retryable,
            format!("dynamodb:UpdateItem live {image_id}"),
            "the item changed under every attempt",
        ))
    }
}

/// What a revival clears, so both branches run afresh.
const REVIVAL_CLEARS: [&str; 19] = [
    "reason",
    "duplicate_of",
    "labels",
    "detector",
    "label_model_version",
    "labeled_at",
    "stored_at",
    "deleted_at",
    "label_claim",
    "label_claim_until",
    "label_pending",
    "thumbnail",
    "thumbnail_error",
    "completed_at",
    "completed_by",
    "completion_token",
    "completion_until",
    "completion_generation",
    "completion_announced",
];

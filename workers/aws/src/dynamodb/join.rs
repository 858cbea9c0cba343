//! The two branches' writes on the images table (labels, thumbnail) and their join: each
//! branch reads, from the item as it was before its own write, whether the other is done, and
//! the completion is claimed and announced once.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::*;

impl DynamoImageTable {
    pub(super) async fn store_labels(
        &self,
        labeled: &ImageLabeled,
        stored_at: &str,
    ) -> Result<LabelsWrite, PortError> {
        let image = &labeled.image;
        let mut update = Update::default();
        update.set("status", s(ImageStatus::Labeled.as_str()));
        update.set(
            "status_day",
            s(&status_day(
                ImageStatus::Labeled,
                &image.received_at,
                &image.image_id,
            )),
        );
        update.set_if_not_exists("day", s(&day_key(&image.received_at, &image.image_id)));
        update.set_if_not_exists(
            "received_key",
            s(&received_key(&image.received_at, &image.image_id)),
        );
        update.set("stored_at", s(stored_at));
        update.set("labels", to_attribute(&labeled.labels)?);
        update.set("detector", s(&labeled.detector));
        update.set("label_model_version", s(&labeled.label_model_version));
        update.set("labeled_at", s(&labeled.labeled_at));
        // A relabel of a copy gets its own labels: it is no longer a copy of anything.
        match &labeled.duplicate_of {
            Some(original) => update.set("duplicate_of", s(original)),
            None => update.remove("duplicate_of"),
        }
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
        // The labels are the claim's outcome: the detection kept for a failed publish is no
        // longer needed, and must not be republished by a later relabel's claim.
        update.remove("label_pending");
        // Equal timestamps are the same message again: rewriting it is harmless and lets a
        // redelivery after a crash still publish downstream.
        // A deleted image stays deleted, whatever was still on its way to this stage.
        update.condition(
            "(attribute_not_exists(#labeled_at) OR #labeled_at <= :labeled_at) \
             AND (attribute_not_exists(#status) OR (#status <> :deleted AND #status <> :replaced))",
            &[
                ("labeled_at", s(&labeled.labeled_at)),
                ("deleted", s(ImageStatus::Deleted.as_str())),
                ("replaced", s(ImageStatus::Replaced.as_str())),
            ],
        );
        // The whole item before the write: the labels it replaces, and the join's state
        // (the thumbnail branch's fact and the completion are untouched by this write).
        let (outcome, old) = self
            .update_returning(&image.image_id, update, "labels", ReturnValue::AllOld)
            .await?;
        Ok(match outcome {
            WriteOutcome::Superseded => LabelsWrite::Superseded,
            WriteOutcome::Written => LabelsWrite::Written {
                join: join_from(Branch::Labels, &old),
                replaced: replaced_labels(old),
            },
        })
    }

    pub(super) async fn store_thumbnail(
        &self,
        image_id: &str,
        outcome: &ThumbnailOutcome,
    ) -> Result<ThumbnailWrite, PortError> {
        let mut update = Update::default();
        match outcome {
            ThumbnailOutcome::Made(thumbnail) => {
                update.set("thumbnail", to_attribute(thumbnail)?);
                update.remove("thumbnail_error");
            }
            ThumbnailOutcome::Failed(reason) => {
                update.set("thumbnail_error", s(reason));
                update.remove("thumbnail");
            }
        }
        update.condition(
            "attribute_exists(#id) AND #status <> :deleted AND #status <> :replaced",
            &[
                ("deleted", s(ImageStatus::Deleted.as_str())),
                ("replaced", s(ImageStatus::Replaced.as_str())),
            ],
        );
        let (written, old) = self
            .update_returning(image_id, update, "thumbnail", ReturnValue::AllOld)
            .await?;
        Ok(match written {
            WriteOutcome::Written => ThumbnailWrite::Written(join_from(Branch::Thumbnail, &old)),
            WriteOutcome::Superseded => ThumbnailWrite::Refused,
        })
    }

    pub(super) async fn complete_join(
        &self,
        image_id: &str,
        branch: Branch,
        claim: &CompletionClaim,
    ) -> Result<Option<ImageRecord>, PortError> {
        let mut update = Update::default();
        // A retried completion keeps the time of the first.
        update.set_if_not_exists("completed_at", s(&claim.now));
        update.set("completed_by", s(branch.as_str()));
        update.set("completion_token", s(&claim.token));
        update.set("completion_until", s(&claim.until));
        update.set("completion_generation", s(&claim.generation));
        // Another message of this branch (a duplicate) may take an unannounced completion over
        // only once the holder's lease has run out.
        update.condition(
            "attribute_exists(#labeled_at) \
             AND (attribute_exists(#thumbnail) OR attribute_exists(#thumbnail_error)) \
             AND #status <> :deleted AND #status <> :replaced \
             AND (attribute_not_exists(#completed_by) \
                  OR (#completed_by = :completed_by AND attribute_not_exists(#completion_announced) \
                      AND (attribute_not_exists(#completion_token) \
                           OR #completion_token = :completion_token \
                           OR #completion_until < :now \
                           OR #completion_generation < :completion_generation)))",
            &[
                ("deleted", s(ImageStatus::Deleted.as_str())),
                ("replaced", s(ImageStatus::Replaced.as_str())),
                ("now", s(&claim.now)),
            ],
        );
        let (written, item) = self
            .update_returning(image_id, update, "completion", ReturnValue::AllNew)
            .await?;
        match written {
            WriteOutcome::Written => item_to_record(item).map(Some),
            WriteOutcome::Superseded => Ok(None),
        }
    }

    pub(super) async fn announce_completion(&self, image_id: &str) -> Result<(), PortError> {
        let mut update = Update::default();
        update.set("completion_announced", AttributeValue::Bool(true));
        update.condition("attribute_exists(#id)", &[]);
        self.update(image_id, update, "completion announced")
            .await?;
        Ok(())
    }
}

/// The join as `branch` sees it, from the item's attributes before its own write.
fn join_from(branch: Branch, old: &HashMap<String, AttributeValue>) -> Join {
    let other_done = match branch {
        Branch::Labels => old.contains_key("thumbnail") || old.contains_key("thumbnail_error"),
        Branch::Thumbnail => old.contains_key("labeled_at"),
    };
    Join::after(
        branch,
        other_done,
        text(old, "completed_by").as_deref(),
        old.contains_key("completion_announced"),
    )
}

//! The label claim on the images table: who may call the paid detector for an image, and
//! why a refused claim was refused.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use imgflow_messages::ImageStatus;
use imgflow_runtime::{
    ports::{LabelClaim, WriteOutcome, CLAIM_DONE},
    PortError,
};

use super::{codec::s, codec::Update, text, DynamoImageTable};

impl DynamoImageTable {
    /// Takes the label claim for `token` until `until` if `condition` holds (it may use
    /// `:deleted`, `:now`, `:done`, `:label_claim` and `values`); when it does not, one
    /// consistent read and `refusal` tell why (a rare path: duplicates only).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn claim(
        &self,
        image_id: &str,
        token: &str,
        now: &str,
        until: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
        refusal: impl FnOnce(&HashMap<String, AttributeValue>) -> LabelClaim,
    ) -> Result<LabelClaim, PortError> {
        let mut update = Update::default();
        update.set("label_claim", s(token));
        update.set("label_claim_until", s(until));
        let mut all = vec![
            ("deleted", s(ImageStatus::Deleted.as_str())),
            ("replaced", s(ImageStatus::Replaced.as_str())),
            ("now", s(now)),
            ("done", s(CLAIM_DONE)),
        ];
        all.extend(values.iter().cloned());
        update.condition(condition, &all);
        let (outcome, item) = self
            .update_returning(image_id, update, "label claim", ReturnValue::AllNew)
            .await?;
        if outcome == WriteOutcome::Written {
            return Ok(LabelClaim::Granted {
                pending: text(&item, "label_pending"),
            });
        }
        Ok(match self.get_item(image_id).await? {
            Some(item) => refusal(&item),
            // No item: ingest's write was lost. The store stage's write creates it.
            None => LabelClaim::Granted { pending: None },
        })
    }
}

/// Why a relabel's claim was refused.
pub(super) fn relabel_refusal(item: &HashMap<String, AttributeValue>) -> LabelClaim {
    let until = text(item, "label_claim_until");
    if text(item, "status")
        .and_then(|s| ImageStatus::parse(&s))
        .is_some_and(ImageStatus::is_gone)
    {
        LabelClaim::Deleted
    } else if until.as_deref() == Some(CLAIM_DONE) {
        LabelClaim::Done
    } else {
        LabelClaim::HeldByOther {
            until: until.unwrap_or_else(imgflow_runtime::clock::now_rfc3339),
        }
    }
}

/// Why an upload's claim was refused, from the item as it is now.
pub(super) fn claim_refusal(item: &HashMap<String, AttributeValue>, detector: &str) -> LabelClaim {
    let status = text(item, "status");
    if status
        .as_deref()
        .and_then(ImageStatus::parse)
        .is_some_and(ImageStatus::is_gone)
    {
        return LabelClaim::Deleted;
    }
    let labeled = status.as_deref() == Some(ImageStatus::Labeled.as_str())
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

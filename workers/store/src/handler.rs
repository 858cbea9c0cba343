//! Store: `ImageLabeled` → conditional write of the item → label index → `ImageStored` →
//! the join with the thumbnail branch (`ImageCompleted` when the thumbnail was there first).
use std::sync::Arc;

use imgflow_catalog::ports::LabelIndex;
use imgflow_messages::{ImageLabeled, ImageStored, StageMessage, SCHEMA_VERSION};
use imgflow_runtime::{
    clock,
    consumer::{HandleError, Handler},
    join,
    ports::{Branch, ImageTable, LabelsWrite, Publisher, ReceivedMessage, StoredLabels},
};
use tracing::Span;

/// The store stage's logic.
pub struct StoreHandler<T, I, P, C> {
    table: Arc<T>,
    index: Arc<I>,
    publisher: Arc<P>,
    completions: Arc<C>,
}

impl<T: ImageTable, I: LabelIndex, P: Publisher, C: Publisher> StoreHandler<T, I, P, C> {
    /// A handler writing `table` and `index`, publishing `ImageStored` to `publisher` and
    /// `ImageCompleted` to `completions`.
    pub fn new(table: Arc<T>, index: Arc<I>, publisher: Arc<P>, completions: Arc<C>) -> Self {
        Self {
            table,
            index,
            publisher,
            completions,
        }
    }
}

impl<T: ImageTable, I: LabelIndex, P: Publisher, C: Publisher> Handler
    for StoreHandler<T, I, P, C>
{
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandleError> {
        let labeled = ImageLabeled::decode(&message.body)?;
        Span::current().record("image_id", labeled.image.image_id.as_str());
        Span::current().record("trace_id", labeled.image.trace_id.as_str());
        Span::current().record("key", labeled.image.key.as_str());

        let stored_at = clock::now_rfc3339();
        let write = self
            .table
            .write_labels(&labeled, &stored_at)
            .await
            .map_err(|e| HandleError::from_port("table_write_failed", e))?;
        let LabelsWrite::Written { replaced, join } = write else {
            tracing::info!(labeled_at = %labeled.labeled_at, "newer labels are already stored; message dropped");
            return Ok(());
        };
        // After the item, so a failure here retries the message and the (equal-time) item
        // write again; entries never point at labels the item does not hold yet.
        let current = StoredLabels {
            labeled_at: labeled.labeled_at.clone(),
            labels: labeled.labels.clone(),
        };
        self.index
            .index_labels(&labeled.image.image_id, &current, replaced.as_ref())
            .await
            .map_err(|e| HandleError::from_port("index_write_failed", e))?;
        let mut by_confidence: Vec<_> = labeled.labels.iter().collect();
        by_confidence.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        let stored = ImageStored {
            schema_version: SCHEMA_VERSION,
            label_names: by_confidence.iter().map(|l| l.name.clone()).collect(),
            labeled_at: labeled.labeled_at.clone(),
            stored_at,
            image: labeled.image,
        };
        self.publisher
            .publish(stored.encode())
            .await
            .map_err(|e| HandleError::from_port("publish_failed", e))?;
        if let Some(seconds) = clock::seconds_between(&stored.image.received_at, &stored.stored_at)
        {
            metrics::histogram!("imgflow_end_to_end_seconds").record(seconds);
        }
        let top = stored
            .label_names
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        tracing::info!(labels = stored.label_names.len(), %top, "labels stored");
        join::complete_if_ready(
            self.table.as_ref(),
            self.completions.as_ref(),
            &stored.image,
            Branch::Labels,
            join,
            &message.message_id,
            &stored.labeled_at,
        )
        .await
    }
}

//! Store: `ImageLabeled` → conditional UpdateItem → `ImageStored`.
use std::sync::Arc;

use imgflow_messages::{ImageLabeled, ImageStored, StageMessage, SCHEMA_VERSION};
use imgflow_runtime::{
    clock,
    consumer::{HandleError, Handler},
    ports::{ImageTable, Publisher, ReceivedMessage, WriteOutcome},
};
use tracing::Span;

/// The store stage's logic.
pub struct StoreHandler<T, P> {
    table: Arc<T>,
    publisher: Arc<P>,
}

impl<T: ImageTable, P: Publisher> StoreHandler<T, P> {
    /// A handler writing `table` and publishing to `publisher`.
    pub fn new(table: Arc<T>, publisher: Arc<P>) -> Self {
        Self { table, publisher }
    }
}

impl<T: ImageTable, P: Publisher> Handler for StoreHandler<T, P> {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandleError> {
        let labeled = ImageLabeled::decode(&message.body)?;
        Span::current().record("image_id", labeled.image.image_id.as_str());
        Span::current().record("trace_id", labeled.image.trace_id.as_str());

        let stored_at = clock::now_rfc3339();
        let outcome = self
            .table
            .record_labels(&labeled, &stored_at)
            .await
            .map_err(|e| HandleError::from_port("table_write_failed", e))?;
        if outcome == WriteOutcome::Superseded {
            tracing::info!(labeled_at = %labeled.labeled_at, "newer labels are already stored; message dropped");
            return Ok(());
        }
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
        tracing::info!(labels = stored.label_names.len(), "labels stored");
        Ok(())
    }
}

//! Whole-table passes: `imgflow reindex` (gallery keys and label entries for items written
//! before the console or before the index keys were sharded) and `recent`, a scan for tests and the console benchmark.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use imgflow_catalog::{
    keys::{day_of, GalleryKeys},
    ports::LabelIndex,
};
use imgflow_messages::ImageRecord;
use imgflow_runtime::{
    ports::{StoredLabels, WriteOutcome},
    PortError,
};

use super::dynamodb_error;
use super::{
    codec::{item_to_record, s, Update},
    index::IndexTable,
    DynamoImageTable,
};

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

impl DynamoImageTable {
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
            .map_err(|e| dynamodb_error(format!("dynamodb:Scan {}", self.table), e))?;
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
    pub async fn reindex(&self, index: &IndexTable) -> Result<ReindexReport, PortError> {
        let mut report = ReindexReport::default();
        let mut start = None;
        loop {
            let (records, next) = self.scan_page(start).await?;
            for record in records {
                report.items += 1;
                if self.set_index_keys(&record).await? == WriteOutcome::Written {
                    report.keyed += 1;
                }
                // A deleted or replaced image's labels stay on its item, out of the index.
                if record.status.is_gone() {
                    continue;
                }
                if let (Some(labeled_at), Some(labels)) = (record.labeled_at, record.labels) {
                    let current = StoredLabels { labeled_at, labels };
                    index.index_labels(&record.id, &current, None).await?;
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
    /// console) or holds them unsharded (from before sharding), unless a stage changed its
    /// status meanwhile (its own write set the keys). Deleted and replaced items keep none.
    async fn set_index_keys(&self, record: &ImageRecord) -> Result<WriteOutcome, PortError> {
        let Some(keys) = GalleryKeys::of(record) else {
            return Ok(WriteOutcome::Superseded);
        };
        let mut update = Update::default();
        update.set("day", s(&keys.day));
        update.set("received_key", s(&keys.received_key));
        update.set("status_day", s(&keys.status_day));
        let unsharded = format!("{}#{}", record.status, day_of(&record.received_at));
        update.condition(
            "(attribute_not_exists(#status_day) OR #status_day = :unsharded) \
             AND #status = :status",
            &[
                ("status", s(record.status.as_str())),
                ("unsharded", s(&unsharded)),
            ],
        );
        self.update(&record.id, update, "reindex").await
    }
}

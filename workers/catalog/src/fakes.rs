//! The read model in memory: a label index and a catalog over the runtime's `FakeTable`, with
//! the key rules of [`crate::keys`], so handler and route tests see what DynamoDB would hold.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use imgflow_messages::ImageRecord;
use imgflow_runtime::{
    fakes::{FakeLedger, FakeTable},
    ledger::{Decision, KeyChange},
    ports::{ObjectLedger, StoredLabels},
    PortError, PortErrorKind,
};

use crate::{
    keys::{
        label_changes, label_partitions, merge_newest, received_key, LabelEntry, PartitionPage,
    },
    ports::{ImageCatalog, ImagePage, ImageQuery, LabelIndex},
};

/// The index table: label entries by `(pk, sk)`, as the index table holds them, and the
/// object ledger that shares the table.
#[derive(Debug, Default)]
pub struct FakeLabelIndex {
    entries: Mutex<BTreeMap<(String, String), LabelEntry>>,
    /// Puts and deletes per partition key, for load simulations.
    writes: Mutex<BTreeMap<String, u64>>,
    ledger: FakeLedger,
}

impl FakeLabelIndex {
    /// The ids of the images under label (or parent) `name`, newest labels first.
    pub fn images_with_label(&self, name: &str) -> Vec<String> {
        let entries = self.entries.lock().unwrap();
        let pages = label_partitions(name)
            .into_iter()
            .map(|pk| PartitionPage {
                items: entries
                    .iter()
                    .rev()
                    .filter(|((p, _), _)| *p == pk)
                    .map(|((_, sk), e)| (sk.clone(), e.image_id.clone()))
                    .collect(),
                more: false,
            })
            .collect();
        merge_newest(pages, usize::MAX).0
    }

    /// The writes (puts and deletes) each partition key has taken so far.
    pub fn writes_by_partition(&self) -> BTreeMap<String, u64> {
        self.writes.lock().unwrap().clone()
    }

    /// How many entries the index holds.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FakeLabelIndex {
    /// The object ledger sharing the table.
    pub fn ledger(&self) -> &FakeLedger {
        &self.ledger
    }
}

impl ObjectLedger for FakeLabelIndex {
    async fn record(
        &self,
        bucket: &str,
        key: &str,
        sequencer: Option<&str>,
        event_time: &str,
        change: KeyChange<'_>,
    ) -> Result<Decision, PortError> {
        self.ledger
            .record(bucket, key, sequencer, event_time, change)
            .await
    }
}

impl LabelIndex for FakeLabelIndex {
    async fn index_labels(
        &self,
        image_id: &str,
        current: &StoredLabels,
        replaced: Option<&StoredLabels>,
    ) -> Result<(), PortError> {
        let (put, delete) = label_changes(image_id, current, replaced);
        let mut entries = self.entries.lock().unwrap();
        let mut writes = self.writes.lock().unwrap();
        for entry in delete {
            *writes.entry(entry.key().0).or_default() += 1;
            entries.remove(&entry.key());
        }
        for entry in put {
            *writes.entry(entry.key().0).or_default() += 1;
            entries.insert(entry.key(), entry);
        }
        Ok(())
    }
}

/// Lists a `FakeTable` by sorting every item on its `received_key`; a label search goes
/// through the label index. The cursor is the number of images already shown.
#[derive(Debug, Clone)]
pub struct FakeCatalog {
    /// The images (a clone shares them).
    pub table: FakeTable,
    /// The label index the store stage wrote.
    pub index: Arc<FakeLabelIndex>,
}

impl ImageCatalog for FakeCatalog {
    async fn list(&self, query: &ImageQuery) -> Result<ImagePage, PortError> {
        let skip = match &query.cursor {
            Some(c) => c.parse().map_err(|_| {
                PortError::new(PortErrorKind::Invalid, "reading the page cursor", c.clone())
            })?,
            None => 0,
        };
        let labeled: Option<Vec<String>> = query
            .label
            .as_deref()
            .map(|l| self.index.images_with_label(l));
        let mut matching: Vec<ImageRecord> = self
            .table
            .items()
            .into_values()
            // Deleted images have left the gallery's indexes.
            .filter(|r| !r.status.is_gone())
            .filter(|r| query.status.is_none_or(|s| s == r.status))
            .filter(|r| labeled.as_ref().is_none_or(|ids| ids.contains(&r.id)))
            .collect();
        matching.sort_by_key(|r| std::cmp::Reverse(received_key(&r.received_at, &r.id)));
        let limit = query.limit.max(1);
        let more = matching.len() > skip + limit;
        Ok(ImagePage {
            images: matching.into_iter().skip(skip).take(limit).collect(),
            next: more.then(|| (skip + limit).to_string()),
        })
    }
}

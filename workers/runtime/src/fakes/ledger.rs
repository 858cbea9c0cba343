//! The object ledger in memory.
use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use imgflow_messages::order_key;

use crate::{
    ports::{ObjectLedger, ObjectOrder},
    PortError,
};

#[derive(Debug, Default, Clone)]
struct Entry {
    image_ids: BTreeSet<String>,
    /// Order key of the latest sequenced event, and whether it was a deletion.
    latest: Option<(String, bool)>,
}

/// Each key's creations and deletions, with the same ordering rule as the DynamoDB ledger.
#[derive(Debug, Default, Clone)]
pub struct FakeLedger {
    entries: Arc<Mutex<HashMap<(String, String), Entry>>>,
}

impl ObjectLedger for FakeLedger {
    async fn object_created(
        &self,
        bucket: &str,
        key: &str,
        image_id: &str,
        sequencer: Option<&str>,
    ) -> Result<ObjectOrder, PortError> {
        let mut entries = self.entries.lock().unwrap();
        let entry = entries
            .entry((bucket.to_owned(), key.to_owned()))
            .or_default();
        entry.image_ids.insert(image_id.to_owned());
        let Some(sequencer) = sequencer.map(order_key) else {
            return Ok(ObjectOrder::Current);
        };
        match &entry.latest {
            Some((latest, deleted)) if *latest > sequencer => Ok(if *deleted {
                ObjectOrder::LaterDeleted
            } else {
                ObjectOrder::LaterCreated
            }),
            _ => {
                entry.latest = Some((sequencer, false));
                Ok(ObjectOrder::Current)
            }
        }
    }

    async fn object_deleted(
        &self,
        bucket: &str,
        key: &str,
        sequencer: Option<&str>,
    ) -> Result<Option<Vec<String>>, PortError> {
        let mut entries = self.entries.lock().unwrap();
        let entry = entries
            .entry((bucket.to_owned(), key.to_owned()))
            .or_default();
        if let Some(sequencer) = sequencer.map(order_key) {
            if entry.latest.as_ref().is_some_and(|(l, _)| *l > sequencer) {
                return Ok(None);
            }
            entry.latest = Some((sequencer, true));
        }
        Ok(Some(entry.image_ids.iter().cloned().collect()))
    }
}

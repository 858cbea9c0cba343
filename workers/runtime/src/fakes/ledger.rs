//! The object ledger in memory.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::{
    fakes::table::ITEM_LIMIT_BYTES,
    ledger::{Decision, KeyChange, KeyHistory},
    ports::ObjectLedger,
    PortError, PortErrorKind,
};

/// Each key's history with the same rules as the DynamoDB ledger ([`crate::ledger`]), stored
/// as DynamoDB stores it (one item per key, refused over the item limit).
#[derive(Debug, Default, Clone)]
pub struct FakeLedger {
    entries: Arc<Mutex<HashMap<(String, String), String>>>,
}

impl FakeLedger {
    /// The largest ledger item, in bytes, as stored.
    pub fn largest_item_bytes(&self) -> usize {
        let entries = self.entries.lock().unwrap();
        entries.values().map(String::len).max().unwrap_or(0)
    }

    /// The history recorded for a key.
    pub fn history(&self, bucket: &str, key: &str) -> KeyHistory {
        let entries = self.entries.lock().unwrap();
        entries
            .get(&(bucket.to_owned(), key.to_owned()))
            .map(|item| serde_json::from_str(item).expect("stored history"))
            .unwrap_or_default()
    }
}

impl ObjectLedger for FakeLedger {
    async fn record(
        &self,
        bucket: &str,
        key: &str,
        sequencer: Option<&str>,
        event_time: &str,
        change: KeyChange<'_>,
    ) -> Result<Decision, PortError> {
        let mut entries = self.entries.lock().unwrap();
        let slot = (bucket.to_owned(), key.to_owned());
        let mut history: KeyHistory = entries
            .get(&slot)
            .map(|item| serde_json::from_str(item).expect("stored history"))
            .unwrap_or_default();
        let decision = history.record(sequencer, event_time, change);
        let item = serde_json::to_string(&history).expect("history serializes");
        if item.len() + key.len() + bucket.len() > ITEM_LIMIT_BYTES {
            return Err(PortError::new(
                PortErrorKind::Fatal,
                "fake:PutItem ledger",
                "Item size has exceeded the maximum allowed size",
            ));
        }
        entries.insert(slot, item);
        Ok(decision)
    }
}

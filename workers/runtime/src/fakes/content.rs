//! The content index in memory.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::{
    ports::{ContentIndex, ContentKey, Original},
    PortError,
};

/// One original per content key, with the DynamoDB adapter's conditions.
#[derive(Debug, Default, Clone)]
pub struct FakeContentIndex {
    entries: Arc<Mutex<HashMap<ContentKey, Original>>>,
}

impl FakeContentIndex {
    /// The original registered for `content`.
    pub fn original(&self, content: &ContentKey) -> Option<Original> {
        self.entries.lock().unwrap().get(content).cloned()
    }
}

impl ContentIndex for FakeContentIndex {
    async fn register(
        &self,
        content: &ContentKey,
        candidate: &Original,
    ) -> Result<Original, PortError> {
        let mut entries = self.entries.lock().unwrap();
        let entry = entries
            .entry(content.clone())
            .or_insert_with(|| candidate.clone());
        if entry.image_id == candidate.image_id {
            let sha256 = entry.sha256.take();
            *entry = Original {
                sha256,
                ..candidate.clone()
            };
        }
        Ok(entry.clone())
    }

    async fn take_over(
        &self,
        content: &ContentKey,
        former: &str,
        candidate: &Original,
    ) -> Result<Original, PortError> {
        let mut entries = self.entries.lock().unwrap();
        let entry = entries
            .entry(content.clone())
            .or_insert_with(|| candidate.clone());
        if entry.image_id == former {
            *entry = Original {
                sha256: None,
                ..candidate.clone()
            };
        }
        Ok(entry.clone())
    }

    async fn remember_sha256(
        &self,
        content: &ContentKey,
        original: &str,
        sha256: &str,
    ) -> Result<(), PortError> {
        if let Some(entry) = self.entries.lock().unwrap().get_mut(content) {
            if entry.image_id == original {
                entry.sha256 = Some(sha256.to_owned());
            }
        }
        Ok(())
    }
}

//! The call counter in memory.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::{
    ports::{CallCounter, CallWindow},
    PortError,
};

/// Counts per scope and window, with the DynamoDB adapter's condition.
#[derive(Debug, Default, Clone)]
pub struct FakeCallCounter {
    counts: Arc<Mutex<HashMap<(String, String), u64>>>,
}

impl FakeCallCounter {
    /// The counts of `scope` in every window.
    pub fn total(&self, scope: &str) -> u64 {
        let counts = self.counts.lock().unwrap();
        counts
            .iter()
            .filter(|((s, _), _)| s == scope)
            .map(|(_, n)| n)
            .sum()
    }

    /// The count of `scope` in `window`.
    pub fn count(&self, scope: &str, window: &str) -> u64 {
        let counts = self.counts.lock().unwrap();
        counts
            .get(&(scope.to_owned(), window.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

impl CallCounter for FakeCallCounter {
    async fn take(&self, window: &CallWindow) -> Result<Option<u64>, PortError> {
        let mut counts = self.counts.lock().unwrap();
        let count = counts
            .entry((window.scope.clone(), window.window.clone()))
            .or_default();
        if *count >= window.limit {
            return Ok(None);
        }
        *count += 1;
        Ok(Some(*count))
    }

    async fn give_back(&self, window: &CallWindow) -> Result<(), PortError> {
        let mut counts = self.counts.lock().unwrap();
        if let Some(count) = counts.get_mut(&(window.scope.clone(), window.window.clone())) {
            *count = count.saturating_sub(1);
        }
        Ok(())
    }
}

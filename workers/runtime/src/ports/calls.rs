//! Detector calls counted per window of time, shared by every replica of the label stage: the
//! detector budget (calls per hour or day) and the stage-wide rate (calls per second).
use std::future::Future;

use crate::PortError;

/// One window of a call counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallWindow {
    /// What is counted: `budget` or `rate`, and the detector.
    pub scope: String,
    /// The window's start and length, `2026-12-07T16:00:00Z/3600s`: its key.
    pub window: String,
    /// At most this many calls in it.
    pub limit: u64,
    /// When the count may be dropped (Unix seconds; DynamoDB's TTL).
    pub expires_at: i64,
}

/// Counts calls per window across processes.
pub trait CallCounter: Send + Sync + 'static {
    /// Counts one call in `window` if fewer than its limit are counted: the count after, or
    /// `None` when the window is full.
    fn take(
        &self,
        window: &CallWindow,
    ) -> impl Future<Output = Result<Option<u64>, PortError>> + Send;

    /// Uncounts one call taken in `window` that was not made after all (the detector failed,
    /// which is not billed).
    fn give_back(&self, window: &CallWindow) -> impl Future<Output = Result<(), PortError>> + Send;
}

//! The ports of a key's history: the object ledger that orders a key's events, and what its
//! decisions write to an image's item ([`super::ImageTable::end`], [`super::ImageTable::live`]).
use std::future::Future;

use imgflow_messages::ImageStatus;

use super::StoredLabels;
use crate::{
    ledger::{Decision, KeyChange},
    PortError,
};

/// An image that is no longer its key's object ([`super::ImageTable::end`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GoneImage {
    /// The image.
    pub image_id: String,
    /// Its bucket and key, for an item created by this write.
    pub bucket: String,
    /// See `bucket`.
    pub key: String,
    /// `Deleted` or `Replaced`.
    pub status: ImageStatus,
    /// When imgflow learned it (RFC 3339).
    pub at: String,
    /// The ledger's version that decided it; [`PURGED`] for a version deleted for good.
    pub version: u64,
}

/// The `reason` recorded on an image that is no longer its key's object.
pub fn gone_reason(status: ImageStatus) -> &'static str {
    match status {
        ImageStatus::Replaced => "a later upload to the same key replaced it",
        _ => "the object was deleted",
    }
}

/// How [`super::ImageTable::end`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// Recorded; the labels the item held, if any.
    Ended(Option<StoredLabels>),
    /// A newer decision is recorded: nothing changed.
    Newer,
}

/// The ledger version of a permanently deleted version: no later decision brings it back.
pub const PURGED: u64 = u64::MAX;

/// How [`super::ImageTable::live`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revival {
    /// The item was ended by an older decision and is new again: process it from the start.
    Revived,
    /// The item was not ended; the decision is recorded.
    Current,
    /// A newer decision is recorded (or there is no item): nothing changed.
    Newer,
}

/// Each object key's history of creations and removals, ordered by S3's sequencer, so that
/// events arriving out of order (S3 does not promise order) or more than once still end as
/// in-order processing would ([`crate::ledger`] has the rules).
pub trait ObjectLedger: Send + Sync + 'static {
    /// Records one event on `key` and answers the fates it decides.
    fn record(
        &self,
        bucket: &str,
        key: &str,
        sequencer: Option<&str>,
        event_time: &str,
        change: KeyChange<'_>,
    ) -> impl Future<Output = Result<Decision, PortError>> + Send;
}

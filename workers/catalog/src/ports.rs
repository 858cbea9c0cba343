//! The catalog's ports: how the pipeline feeds the read model, and how the console reads it.
use std::future::Future;

use imgflow_messages::{ImageRecord, ImageStatus};
use imgflow_runtime::{ports::StoredLabels, PortError};

/// What the gallery (or an API client) asks for: newest first, optionally only one status
/// and only images with a label (matched case-insensitively, parents included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageQuery {
    /// Only images in this status.
    pub status: Option<ImageStatus>,
    /// Only images with this label or a label whose parent it is.
    pub label: Option<String>,
    /// Where the previous page ended ([`ImagePage::next`]).
    pub cursor: Option<String>,
    /// At most this many images.
    pub limit: usize,
}

/// One page of images, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImagePage {
    /// The images.
    pub images: Vec<ImageRecord>,
    /// Pass as [`ImageQuery::cursor`] for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Lists images through indexes, never by scanning the table. An unreadable cursor is a
/// [`imgflow_runtime::PortErrorKind::Invalid`] error.
pub trait ImageCatalog: Send + Sync + 'static {
    /// One page of images matching `query`.
    fn list(&self, query: &ImageQuery)
        -> impl Future<Output = Result<ImagePage, PortError>> + Send;
}

/// Images by label name: one entry per image and label or parent name
/// ([`crate::keys::label_entries`]).
pub trait LabelIndex: Send + Sync + 'static {
    /// Indexes `image_id`'s `current` labels and drops the entries of the `replaced` ones
    /// that `current` no longer has. Idempotent: a redelivered message writes the same entries.
    fn index_labels(
        &self,
        image_id: &str,
        current: &StoredLabels,
        replaced: Option<&StoredLabels>,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Where a stage's completed-message counts per minute go (the console's throughput); the
/// counts of all replicas add up.
pub trait ThroughputLog: Send + Sync + 'static {
    /// Adds `count` completed messages to `stage`'s `minute` (`YYYY-MM-DDTHH:MM`, see
    /// [`crate::keys::minute_of`]).
    fn add_completed(
        &self,
        stage: &str,
        minute: &str,
        count: u64,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

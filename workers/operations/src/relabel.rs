//! `imgflow relabel`: label matching items again, after a model upgrade or a switch between
//! Rekognition and the local detector.
//!
//! Items are found through the console's indexes (by status, by label), never by a scan, and
//! filtered by detector and model version. Each gets an `ImageAccepted` carrying this run's
//! generation, sent straight to the label queue: the label stage lets a generation past the
//! labels already stored, once, so duplicates of one relabel message cost one detector call,
//! and the store stage replaces the labels and their label-index entries as it always does.
use std::time::Instant;

use imgflow_aws::{dynamodb::catalog::DynamoCatalog, sqs::QueueAdmin};
use imgflow_catalog::ports::{ImageCatalog, ImageQuery};
use imgflow_messages::{
    ImageAccepted, ImageRecord, ImageRef, ImageStatus, StageMessage, SCHEMA_VERSION,
};
use imgflow_runtime::PortError;

/// Which items to relabel. Every filter given must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Labels from this model version (`label_model_version`).
    pub model_version: Option<String>,
    /// Labels from this detector (`rekognition`, `local`).
    pub detector: Option<String>,
    /// Items with this label or parent (any case).
    pub label: Option<String>,
    /// Items in this status (default `labeled`).
    pub status: Option<ImageStatus>,
}

impl Selection {
    fn matches(&self, record: &ImageRecord) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        // Nothing to read for a deleted or missing image.
        !record.status.is_gone()
            && record.status != ImageStatus::Missing
            && same(&self.detector, &record.detector)
            && same(&self.model_version, &record.label_model_version)
    }
}

/// A run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// What to relabel.
    pub selection: Selection,
    /// This run's generation: the label stage lets it through once per image.
    pub generation: String,
    /// At most this many messages per second.
    pub rate_per_sec: Option<f64>,
    /// Count only; send nothing.
    pub dry_run: bool,
}

/// Where a run is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Items read from the indexes.
    pub read: u64,
    /// Items matching every filter: sent (or that would be, in a dry run).
    pub matched: u64,
    /// Of those, exact copies of another image (`duplicate_of`): a relabel asks the detector
    /// for them too, a deliberate call each, and they stop being copies.
    pub copies: u64,
}

/// The label message that makes the label stage label `record` again.
pub fn relabel_message(record: &ImageRecord, generation: &str) -> ImageAccepted {
    ImageAccepted {
        schema_version: SCHEMA_VERSION,
        image: ImageRef {
            image_id: record.id.clone(),
            trace_id: uuid::Uuid::new_v4().to_string(),
            bucket: record.bucket.clone(),
            key: record.key.clone(),
            version_id: record.version_id.clone(),
            etag: record.etag.clone(),
            received_at: record.received_at.clone(),
        },
        content_type: record.content_type.clone().unwrap_or_default(),
        size: record.size.unwrap_or(0),
        width: record.width.unwrap_or(0),
        height: record.height.unwrap_or(0),
        accepted_at: record
            .accepted_at
            .clone()
            .unwrap_or_else(|| record.received_at.clone()),
        relabel: Some(generation.to_owned()),
        content_md5: None,
    }
}

/// Sends a relabel message for every matching item, calling `on_page` after every page.
pub async fn run(
    catalog: &DynamoCatalog,
    label_queue: &QueueAdmin,
    label_url: &str,
    options: &Options,
    mut on_page: impl FnMut(&Progress),
) -> Result<Progress, PortError> {
    let started = Instant::now();
    let mut progress = Progress::default();
    let mut query = ImageQuery {
        status: Some(options.selection.status.unwrap_or(ImageStatus::Labeled)),
        label: options.selection.label.clone(),
        cursor: None,
        limit: imgflow_catalog::keys::MAX_PAGE,
    };
    loop {
        let page = catalog.list(&query).await?;
        progress.read += page.images.len() as u64;
        let selected: Vec<&ImageRecord> = page
            .images
            .iter()
            .filter(|r| options.selection.matches(r))
            .collect();
        progress.copies += selected.iter().filter(|r| r.duplicate_of.is_some()).count() as u64;
        let bodies: Vec<String> = selected
            .iter()
            .map(|r| relabel_message(r, &options.generation).encode())
            .collect();
        for chunk in bodies.chunks(10) {
            if !options.dry_run {
                if let Some(rate) = options.rate_per_sec {
                    crate::backfill::pace(started, progress.matched, rate).await;
                }
                label_queue.send_batch(label_url, chunk).await?;
            }
            progress.matched += chunk.len() as u64;
        }
        on_page(&progress);
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return Ok(progress),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(detector: &str, version: &str, status: ImageStatus) -> ImageRecord {
        let mut r = ImageRecord::new(
            "id".into(),
            "b".into(),
            "incoming/a.png".into(),
            "e".into(),
            "2026-11-27T00:00:00.000000Z".into(),
            status,
        );
        r.detector = Some(detector.into());
        r.label_model_version = Some(version.into());
        r
    }

    #[test]
    fn every_filter_given_must_match_and_gone_objects_never_do() {
        let by_detector = Selection {
            detector: Some("local".into()),
            ..Selection::default()
        };
        assert!(by_detector.matches(&record("local", "1", ImageStatus::Labeled)));
        assert!(!by_detector.matches(&record("rekognition", "1", ImageStatus::Labeled)));
        let both = Selection {
            detector: Some("local".into()),
            model_version: Some("2".into()),
            ..Selection::default()
        };
        assert!(!both.matches(&record("local", "1", ImageStatus::Labeled)));
        assert!(both.matches(&record("local", "2", ImageStatus::Labeled)));
        assert!(!Selection::default().matches(&record("local", "1", ImageStatus::Deleted)));
        assert!(!Selection::default().matches(&record("local", "1", ImageStatus::Replaced)));
    }

    #[test]
    fn the_message_carries_the_generation_and_decodes() {
        let message = relabel_message(&record("local", "1", ImageStatus::Labeled), "g7");
        let decoded = ImageAccepted::decode(&message.encode()).unwrap();
        assert_eq!(decoded.relabel.as_deref(), Some("g7"));
        assert_eq!(decoded.image.image_id, "id");
    }
}

//! The DynamoDB item contract: one item per image id in table `<prefix>-images`.
//! The API, the CLI and the tests read items through this type.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Label;

/// Where an image is in its life. `rejected`, `missing`, `labeled`, `replaced` and `deleted`
/// are final (short of the key's history changing: see the README's "What happens to every
/// image").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// Checked and handed to the label stage.
    Accepted,
    /// Not an image imgflow can label (format, size, dimensions, corrupt); see `reason`.
    Rejected,
    /// The object (or that version of it) was gone when ingest looked; see `reason`.
    Missing,
    /// Labels are stored.
    Labeled,
    /// Its object was deleted: out of the gallery and the label index.
    Deleted,
    /// A later upload to its key took its place (an overwrite, or a newer version): out of the
    /// gallery and the label index, kept for history.
    Replaced,
}

impl ImageStatus {
    /// The value stored in the `status` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Missing => "missing",
            Self::Labeled => "labeled",
            Self::Deleted => "deleted",
            Self::Replaced => "replaced",
        }
    }

    /// Every status, in a pipeline's order: what commands accept and list.
    pub const ALL: [Self; 6] = [
        Self::Accepted,
        Self::Labeled,
        Self::Rejected,
        Self::Missing,
        Self::Deleted,
        Self::Replaced,
    ];

    /// Parses the stored `status` attribute.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "accepted" => Self::Accepted,
            "rejected" => Self::Rejected,
            "missing" => Self::Missing,
            "labeled" => Self::Labeled,
            "deleted" => Self::Deleted,
            "replaced" => Self::Replaced,
            _ => return None,
        })
    }

    /// Whether no stage will change this status again (short of a new upload).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Accepted)
    }

    /// Whether the image is no longer what its key holds (`deleted` or `replaced`): out of the
    /// gallery and the label index, its bytes never served.
    pub fn is_gone(self) -> bool {
        matches!(self, Self::Deleted | Self::Replaced)
    }
}

impl std::fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One image's item. Timestamps are RFC 3339 UTC with microseconds, which sort as strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// See [`crate::image_id`].
    pub id: String,
    /// Bucket holding the image.
    pub bucket: String,
    /// Object key, decoded.
    pub key: String,
    /// S3 version id on versioned buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// ETag without quotes.
    pub etag: String,
    /// `image/jpeg` or `image/png` from the magic bytes; absent when not recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Object size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Width in pixels, from the image header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels, from the image header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// EXIF metadata read at ingest (`taken_at`, `camera_make`, `camera_model`, `lens`,
    /// `orientation`, `exposure_time`, `f_number`, `iso`, `focal_length_mm`; `gps_*` only
    /// with `IMGFLOW_KEEP_GPS=true`); absent when the image carries none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exif: Option<BTreeMap<String, String>>,
    /// Where the image is in its life.
    pub status: ImageStatus,
    /// Why the image was rejected or is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Labels in Rekognition's shape, once labeled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
    /// Which detector produced the labels (`rekognition`, `local`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// The detector's model version (Rekognition's `LabelModelVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_model_version: Option<String>,
    /// Correlates this image's log lines across stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// When S3 reported the object (the event time).
    pub received_at: String,
    /// When ingest accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<String>,
    /// When the label stage produced the labels now stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labeled_at: Option<String>,
    /// The image whose labels were copied to this one, its bytes being the same (no
    /// detector call was paid for this image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// When the store stage wrote those labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_at: Option<String>,
    /// When ingest learned that the object was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// The version of the key's ledger that last decided this image's fate (live, replaced or
    /// deleted): a decision from an older version never overrides it, so concurrent events on
    /// one key end as their order says, not as their handlers' timing does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_version: Option<u64>,
    /// The stored thumbnail, once the thumbnail stage wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<Thumbnail>,
    /// Why the thumbnail stage could not make one (the branch is still done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_error: Option<String>,
    /// When both branches (labels stored, thumbnail recorded) had written: set once, by
    /// whichever finished last, which also published `image-completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

/// A thumbnail in the image bucket: an upright JPEG no larger than
/// [`THUMBNAIL_MAX_SIDE`] px on its longer side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// Object key, [`thumbnail_key`] of the image id.
    pub key: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// When the thumbnail stage recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_at: Option<String>,
    /// The image's 64-bit perceptual hash (16 hex digits), from the same decode: what
    /// near-duplicates are found by. Absent for a featureless image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perceptual_hash: Option<String>,
}

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX_SIDE: u32 = 320;

/// Where thumbnails live in the image bucket: outside any incoming prefix (the configuration
/// refuses one that overlaps), so writing one starts nothing.
pub const THUMBNAIL_PREFIX: &str = "thumbnails/";

/// The thumbnail's key for an image id.
pub fn thumbnail_key(image_id: &str) -> String {
    format!("{THUMBNAIL_PREFIX}{image_id}.jpg")
}

impl ImageRecord {
    /// A record of an object with only its identity and status known; the rest is filled in
    /// as stages learn it.
    pub fn new(
        id: String,
        bucket: String,
        key: String,
        etag: String,
        received_at: String,
        status: ImageStatus,
    ) -> Self {
        Self {
            id,
            bucket,
            key,
            version_id: None,
            etag,
            content_type: None,
            size: None,
            width: None,
            height: None,
            exif: None,
            status,
            reason: None,
            labels: None,
            detector: None,
            label_model_version: None,
            trace_id: None,
            received_at,
            accepted_at: None,
            labeled_at: None,
            duplicate_of: None,
            stored_at: None,
            deleted_at: None,
            ledger_version: None,
            thumbnail: None,
            thumbnail_error: None,
            completed_at: None,
        }
    }

    /// Names of the labels, most confident first, at most `n`.
    pub fn top_labels(&self, n: usize) -> Vec<&str> {
        let mut labels: Vec<&Label> = self.labels.iter().flatten().collect();
        labels.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        labels
            .into_iter()
            .take(n)
            .map(|l| l.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_stored_value() {
        for s in [
            ImageStatus::Accepted,
            ImageStatus::Rejected,
            ImageStatus::Missing,
            ImageStatus::Labeled,
            ImageStatus::Deleted,
            ImageStatus::Replaced,
        ] {
            assert_eq!(ImageStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ImageStatus::parse("done"), None);
        assert!(!ImageStatus::Accepted.is_final());
        assert!(ImageStatus::Missing.is_final());
    }
}

//! Events the stages publish to each other through SNS (raw delivery into the next stage's
//! queue). Past tense: each states a fact about one image. Every event carries
//! `schema_version`; readers accept unknown extra fields so producers can add fields first.
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::Label;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Identity of one image, carried by every stage event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// See [`crate::image_id`].
    pub image_id: String,
    /// Correlates this image's log lines across stages.
    pub trace_id: String,
    /// Bucket holding the image.
    pub bucket: String,
    /// Object key, decoded.
    pub key: String,
    /// S3 version id on versioned buckets; the detector reads exactly this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// ETag without quotes.
    pub etag: String,
    /// When S3 reported the object (RFC 3339); end-to-end latency starts here.
    pub received_at: String,
}

/// Ingest checked the object: a JPEG or PNG within Rekognition's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageAccepted {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The image.
    #[serde(flatten)]
    pub image: ImageRef,
    /// `image/jpeg` or `image/png`.
    pub content_type: String,
    /// Object size in bytes.
    pub size: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// When ingest accepted it.
    pub accepted_at: String,
    /// Set by `imgflow relabel`: a deliberate relabel of an image that may already have labels.
    /// The label stage lets it through once per value, so duplicates of one relabel message
    /// still cost one detector call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relabel: Option<String>,
    /// The object's MD5 (hex) when ingest saw that its ETag is one (see
    /// `ObjectHead::etag_is_md5`): the label stage names the bytes with it to find exact
    /// copies, without a HEAD of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
}

/// The label stage has labels for the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageLabeled {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The image.
    #[serde(flatten)]
    pub image: ImageRef,
    /// Labels in Rekognition's shape.
    pub labels: Vec<Label>,
    /// Which detector produced them (`rekognition`, `local`, ...).
    pub detector: String,
    /// The detector's model version (Rekognition's `LabelModelVersion`).
    pub label_model_version: String,
    /// When the labels were produced; newer labels win in the table.
    pub labeled_at: String,
    /// The image whose labels these are, when this image's bytes are an exact copy of its
    /// (confirmed by SHA-256): the detector was not called for this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

/// The labels are in the table; for downstream subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageStored {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The image.
    #[serde(flatten)]
    pub image: ImageRef,
    /// Names of the stored labels, most confident first.
    pub label_names: Vec<String>,
    /// When the stored labels were produced.
    pub labeled_at: String,
    /// When the store stage wrote them.
    pub stored_at: String,
}

/// Both branches wrote (labels stored, thumbnail recorded): published once per image, by
/// whichever branch finished last, to `<prefix>-image-completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageCompleted {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The image.
    #[serde(flatten)]
    pub image: ImageRef,
    /// Names of the stored labels, most confident first.
    pub label_names: Vec<String>,
    /// The thumbnail, unless the thumbnail stage could not make one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<crate::record::Thumbnail>,
    /// When the join recorded completion; with `image_id`, a key to drop duplicates by.
    pub completed_at: String,
    /// The branch that finished last: `labels` or `thumbnail`.
    pub completed_by: String,
}

/// Why a stage message cannot be read. Such a message can never succeed: it is dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not JSON, or missing required fields.
    #[error("malformed {kind} message")]
    Malformed {
        /// Which message was expected.
        kind: &'static str,
        /// What serde found.
        source: serde_json::Error,
    },
    /// Written by a newer (or unknown) producer.
    #[error("{kind} message has schema_version {found}; this build reads {SCHEMA_VERSION}")]
    UnsupportedSchema {
        /// Which message was expected.
        kind: &'static str,
        /// The version in the body.
        found: u64,
    },
}

/// Message kinds that travel between stages.
pub trait StageMessage: Serialize + DeserializeOwned {
    /// Name for errors and logs.
    const KIND: &'static str;

    /// The image the message is about.
    fn image(&self) -> &ImageRef;

    /// Reads a message body, checking the schema version before the shape so a message from a
    /// newer producer is reported as such rather than as malformed.
    fn decode(body: &str) -> Result<Self, MessageError> {
        let malformed = |source| MessageError::Malformed {
            kind: Self::KIND,
            source,
        };
        let value: serde_json::Value = serde_json::from_str(body).map_err(malformed)?;
        match value.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(found) => {
                return Err(MessageError::UnsupportedSchema {
                    kind: Self::KIND,
                    found,
                })
            }
            None => {
                return Err(malformed(
                    <serde_json::Error as serde::de::Error>::missing_field("schema_version"),
                ))
            }
        }
        serde_json::from_value(value).map_err(malformed)
    }

    /// The body to publish.
    fn encode(&self) -> String {
        serde_json::to_string(self).expect("stage messages serialize infallibly")
    }
}

impl StageMessage for ImageAccepted {
    const KIND: &'static str = "ImageAccepted";
    fn image(&self) -> &ImageRef {
        &self.image
    }
}

impl StageMessage for ImageLabeled {
    const KIND: &'static str = "ImageLabeled";
    fn image(&self) -> &ImageRef {
        &self.image
    }
}

impl StageMessage for ImageCompleted {
    const KIND: &'static str = "ImageCompleted";
    fn image(&self) -> &ImageRef {
        &self.image
    }
}

impl StageMessage for ImageStored {
    const KIND: &'static str = "ImageStored";
    fn image(&self) -> &ImageRef {
        &self.image
    }
}

//! # imgflow-messages: the wire
//!
//! Everything that crosses a process boundary in imgflow, as plain types and pure functions:
//! no async runtime, no AWS SDK, so every shape is testable from a JSON fixture.
//!
//! # Layout
//! - [`s3_event`]: S3 event notifications as they reach the ingest queue (direct, SNS-wrapped,
//!   EventBridge-shaped), including `s3:TestEvent` and form-URL-encoded keys.
//! - [`stage`]: the events stages publish to each other (`ImageAccepted`, `ImageLabeled`,
//!   `ImageStored`, `ImageCompleted`), versioned with `schema_version`.
//! - [`labels`]: labels in exactly Rekognition DetectLabels' shape.
//! - [`record`]: the DynamoDB item contract that tools and tests read.
//! - [`id`]: the deterministic image id.

pub mod id;
pub mod labels;
pub mod record;
pub mod s3_event;
pub mod stage;

pub use id::image_id;
pub use labels::{
    bound_labels, BoundingBox, Instance, Label, NamedRef, DETECTORS, MAX_LABELS_JSON_BYTES,
};
pub use record::{
    thumbnail_key, ImageRecord, ImageStatus, Thumbnail, THUMBNAIL_MAX_SIDE, THUMBNAIL_PREFIX,
};
pub use s3_event::{
    created_notification, order_key, parse_notification, Notification, ObjectChange, ObjectEvent,
};
pub use stage::{
    ImageAccepted, ImageCompleted, ImageLabeled, ImageRef, ImageStored, MessageError, StageMessage,
    SCHEMA_VERSION,
};

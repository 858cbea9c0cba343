//! The ports handlers depend on. Each takes and returns imgflow's own types, so a fake is a
//! few lines (see `fakes`) and handler tests need no emulator.
use std::future::Future;

use bytes::Bytes;
use imgflow_messages::{ImageLabeled, ImageRecord, ImageRef, ImageStatus, Label, Thumbnail};

use crate::PortError;

mod calls;
mod content;
mod lifecycle;
mod near;
mod queue;

pub use calls::{CallCounter, CallWindow};
pub use content::{ContentIndex, ContentKey, FullChecksum, Original, MD5, SHA256};
pub use lifecycle::{gone_reason, Ending, GoneImage, ObjectLedger, Revival, PURGED};
pub use near::{probes, NearIndex, NearMatch, NearPair, PerceptualHash, BANDS, NEAR_THRESHOLD};
pub use queue::{DeadLetter, Publisher, Queue, ReceivedMessage};

/// Where an object is: bucket, key and optionally a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLocation {
    /// Bucket name.
    pub bucket: String,
    /// Object key, decoded.
    pub key: String,
    /// Version id, to read exactly the version an event reported.
    pub version_id: Option<String>,
}

/// Object metadata from a HEAD request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Version id on versioned buckets.
    pub version_id: Option<String>,
    /// S3's checksum of the whole object, from a HEAD that asked for it; `None` from a ranged
    /// read (S3 answers none), for objects stored without one, and for multipart uploads whose
    /// checksum is a checksum of part checksums (`COMPOSITE`).
    pub checksum: Option<FullChecksum>,
    /// Whether the ETag is the MD5 of the bytes: S3's ETag of a single-part upload stored
    /// unencrypted or with SSE-S3 (not of a multipart upload, `-<parts>`, nor under SSE-KMS or
    /// SSE-C, where it is not derived from the bytes alone).
    pub etag_is_md5: bool,
}

/// What a successful upload returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// ETag without quotes.
    pub etag: String,
    /// Version id on versioned buckets.
    pub version_id: Option<String>,
}

/// The image bucket.
pub trait ObjectStore: Send + Sync + 'static {
    /// Object metadata; `NotFound` when it (or that version) is gone.
    fn head(
        &self,
        object: &ObjectLocation,
    ) -> impl Future<Output = Result<ObjectHead, PortError>> + Send;

    /// Bytes `0..=last` of the object (fewer when it is shorter) and its metadata, in one
    /// ranged GET: what a HEAD and a first read would take two requests for.
    fn get_start(
        &self,
        object: &ObjectLocation,
        last: u64,
    ) -> impl Future<Output = Result<(ObjectHead, Bytes), PortError>> + Send;

    /// Bytes `first..=last` of the object.
    fn get_range(
        &self,
        object: &ObjectLocation,
        first: u64,
        last: u64,
    ) -> impl Future<Output = Result<Bytes, PortError>> + Send;

    /// The whole object (the local detector reads images itself).
    fn get(&self, object: &ObjectLocation)
        -> impl Future<Output = Result<Bytes, PortError>> + Send;

    /// Uploads an object.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = Result<PutResult, PortError>> + Send;

    /// Deletes an object's current version; deleting one that is not there succeeds.
    fn delete(&self, bucket: &str, key: &str)
        -> impl Future<Output = Result<(), PortError>> + Send;
}

/// What to label and how.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectRequest {
    /// The image.
    pub object: ObjectLocation,
    /// At most this many labels.
    pub max_labels: u32,
    /// Only labels with at least this confidence (percent).
    pub min_confidence: f32,
}

/// A detector's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Labels in Rekognition's shape.
    pub labels: Vec<Label>,
    /// Rekognition's `LabelModelVersion`, or the local models' version.
    pub label_model_version: String,
}

/// Something that labels images: Rekognition, a local model, or a test fake.
pub trait LabelDetector: Send + Sync + 'static {
    /// Short stable name stored in the item's `detector` attribute.
    fn name(&self) -> &str;

    /// Labels one image. `Invalid` means the image itself can never be labelled.
    fn detect(
        &self,
        request: &DetectRequest,
    ) -> impl Future<Output = Result<Detection, PortError>> + Send;
}

/// How a conditional write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The item now holds what was written.
    Written,
    /// The condition failed: the item already holds a final or newer state; nothing changed.
    Superseded,
}

/// Labels as the images table holds them: what the label index is keyed from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLabels {
    /// When the detector produced them.
    pub labeled_at: String,
    /// The labels.
    pub labels: Vec<Label>,
}

/// How a labels write ended.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelsWrite {
    /// The item now holds the labels; `replaced` are the labels it held before, if any, so
    /// the label index can drop their entries.
    Written {
        /// The previous labels.
        replaced: Option<StoredLabels>,
        /// Where the join stands after this write.
        join: Join,
    },
    /// The item holds labels produced later; nothing changed.
    Superseded,
}

/// The two branches that run in parallel after ingest and are joined on the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// label → store: the labels are stored.
    Labels,
    /// thumbnail: the thumbnail (or why there is none) is recorded.
    Thumbnail,
}

impl Branch {
    /// `labels` or `thumbnail`, as `completed_by` holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Labels => "labels",
            Self::Thumbnail => "thumbnail",
        }
    }
}

/// Where an image's join stands after one branch wrote its fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// The other branch has not written yet; it will complete the image.
    Waiting,
    /// Both branches have written and no completion has been announced: this branch tries to
    /// complete the image ([`ImageTable::complete`]).
    Ready,
    /// The image's completion was recorded and announced (or belongs to the other branch).
    Completed,
}

impl Join {
    /// The join as seen by `branch` once its own fact is written, from the item before that
    /// write: whether the other branch had written, which branch recorded the completion, and
    /// whether it was announced. A completion recorded by this same branch but not announced
    /// is this branch's own earlier attempt, cut short (a crash, a failed publish): ready.
    pub fn after(
        branch: Branch,
        other_done: bool,
        completed_by: Option<&str>,
        announced: bool,
    ) -> Self {
        match completed_by {
            None if other_done => Self::Ready,
            None => Self::Waiting,
            Some(by) if by == branch.as_str() && !announced => Self::Ready,
            Some(_) => Self::Completed,
        }
    }
}

/// Who records an image's completion, and for how long it may announce it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionClaim {
    /// The completing message's id: its redelivery (the same id) may complete again.
    pub token: String,
    /// Now (RFC 3339); `completed_at` when this attempt records the completion.
    pub now: String,
    /// Until when (RFC 3339) a duplicate of the branch's message is refused: after that, an
    /// unannounced completion is taken over (its message went to the dead-letter queue, and
    /// the replay has a new id).
    pub until: String,
    /// What the message carries, in an order: the labels' `labeled_at` for the labels branch,
    /// empty for the thumbnail. A message with newer labels (a relabel) takes an unannounced
    /// completion over at once: the holder's redelivery, its labels superseded, completes
    /// nothing.
    pub generation: String,
}

/// What the thumbnail stage made of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThumbnailOutcome {
    /// A thumbnail is stored.
    Made(Thumbnail),
    /// None can be made (the image does not decode, or its object is gone): why. The branch
    /// is done all the same, so the image still completes.
    Failed(String),
}

/// How the thumbnail stage's write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbnailWrite {
    /// Recorded; where the join stands now.
    Written(Join),
    /// The image is deleted or replaced (or has no item): its thumbnail must go.
    Refused,
}

/// The lease of a completed claim: later than any real time, so it never expires.
pub const CLAIM_DONE: &str = "9999-12-31T23:59:59.999999Z";

/// How a relabel's claim token begins (`relabel:<generation>`); an upload's is its message id.
pub const RELABEL_CLAIM_PREFIX: &str = "relabel:";

/// The answer to a request to label an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelClaim {
    /// Go ahead: this message holds the image until the lease ends. `pending` is an
    /// `ImageLabeled` body a detector already paid for ([`ImageTable::keep_detection`]) but
    /// that never reached the store stage: publish it instead of calling the detector again.
    Granted {
        /// The kept detection, if any.
        pending: Option<String>,
    },
    /// Another message (a duplicate) holds a live claim until `until` (RFC 3339); it will
    /// finish the work, or give the claim up when it fails. Try again after `until`.
    HeldByOther {
        /// When the holder's lease ends.
        until: String,
    },
    /// The labels were published (the claim was completed): they are on their way to the
    /// store stage, durably, in its queue.
    Done,
    /// Labels from this detector are already stored.
    AlreadyLabeled,
    /// The image is deleted or replaced: nothing to label.
    Deleted,
}

/// The images table.
pub trait ImageTable: Send + Sync + 'static {
    /// Writes ingest's verdict (`accepted`, `rejected` or `missing`) unless the image is
    /// already `labeled`: a redelivered or late event never undoes labels.
    fn write_verdict(
        &self,
        record: &ImageRecord,
    ) -> impl Future<Output = Result<WriteOutcome, PortError>> + Send;

    /// Marks an image `rejected` or `missing` after ingest (the detector refused it, or the
    /// object vanished), unless it is `labeled`.
    fn write_failure(
        &self,
        image: &ImageRef,
        status: ImageStatus,
        reason: &str,
    ) -> impl Future<Output = Result<WriteOutcome, PortError>> + Send;

    /// Writes labels, status `labeled` and `stored_at` unless the item holds labels produced
    /// later. Equal times are the same message again and are rewritten.
    fn write_labels(
        &self,
        labeled: &ImageLabeled,
        stored_at: &str,
    ) -> impl Future<Output = Result<LabelsWrite, PortError>> + Send;

    /// Claims the right to call `detector` for an image until `until` (RFC 3339), for the
    /// message `token`, so duplicates of one image cost one detector call. The same token may
    /// re-claim (a redelivery of the same message); another may take over an expired claim.
    fn claim_labeling(
        &self,
        image_id: &str,
        detector: &str,
        token: &str,
        now: &str,
        until: &str,
    ) -> impl Future<Output = Result<LabelClaim, PortError>> + Send;

    /// Claims a deliberate relabel (`imgflow relabel`) for `token`, the relabel's generation:
    /// labels already stored do not refuse it, only a live claim of another message, a
    /// completed claim of this same token (so duplicates of one relabel message cost one
    /// detector call), or a deleted image.
    fn claim_relabeling(
        &self,
        image_id: &str,
        token: &str,
        now: &str,
        until: &str,
    ) -> impl Future<Output = Result<LabelClaim, PortError>> + Send;

    /// Keeps a paid detection (an `ImageLabeled` body) on the item while `token` holds the
    /// claim, before it is published: should the publish fail, a redelivery or a replay
    /// republishes it instead of paying the detector again.
    fn keep_detection(
        &self,
        image_id: &str,
        token: &str,
        labeled: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Marks the claim held by `token` as done and drops its kept detection: the labels are
    /// on their way to the store stage (durably, in its queue), so later duplicates are
    /// dropped for good.
    fn complete_claim(
        &self,
        image_id: &str,
        token: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Gives up the claim held by `token`, if it still holds it (a kept detection stays).
    fn release_claim(
        &self,
        image_id: &str,
        token: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Records the thumbnail branch's outcome unless the image is deleted or replaced.
    fn write_thumbnail(
        &self,
        image_id: &str,
        outcome: &ThumbnailOutcome,
    ) -> impl Future<Output = Result<ThumbnailWrite, PortError>> + Send;

    /// Records that the image is complete (`completed_at`, `completed_by`) for the message
    /// `claim.token`, if both branches have written and no completion is announced, and
    /// returns the item to announce; `None` when another branch holds the completion, another
    /// message of this branch (a duplicate) holds it until `claim.until`, or it was announced.
    fn complete(
        &self,
        image_id: &str,
        branch: Branch,
        claim: &CompletionClaim,
    ) -> impl Future<Output = Result<Option<ImageRecord>, PortError>> + Send;

    /// Records that `image-completed` was published, so a redelivery of the completing message
    /// does not publish it again.
    fn completion_announced(
        &self,
        image_id: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Reads one item.
    fn get(
        &self,
        image_id: &str,
    ) -> impl Future<Output = Result<Option<ImageRecord>, PortError>> + Send;

    /// Reads one item with the detection kept on it ([`ImageTable::keep_detection`]): labels
    /// published and on their way to the store stage, before they are stored.
    fn get_with_kept(
        &self,
        image_id: &str,
    ) -> impl Future<Output = Result<Option<(ImageRecord, Option<String>)>, PortError>> + Send;

    /// Records that an image is no longer what its key holds (`deleted` or `replaced`, as
    /// the key's ledger decided at `gone.version`) and takes it out of the gallery, unless a
    /// newer decision is recorded. Creates the item when there is none (a version deleted
    /// before its creation event arrived), so the late creation finds it gone. Answers the
    /// labels it held, so the label index can drop them, or that a newer decision holds (then
    /// nothing is to be cleaned up: the image may be its key's object again). Idempotent.
    fn end(&self, gone: &GoneImage) -> impl Future<Output = Result<Ending, PortError>> + Send;

    /// Records that the ledger decided at `version` that the image is its key's object. A
    /// `deleted` or `replaced` item decided at an older version is made new again (identical
    /// bytes uploaded to the key again give the same id): labels, claim, thumbnail and
    /// completion cleared so both branches run afresh.
    fn live(
        &self,
        image_id: &str,
        version: u64,
    ) -> impl Future<Output = Result<Revival, PortError>> + Send;
}

/// A shared detector is a detector, so tests can keep a handle on a counting fake.
impl<D: LabelDetector> LabelDetector for std::sync::Arc<D> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn detect(
        &self,
        request: &DetectRequest,
    ) -> impl Future<Output = Result<Detection, PortError>> + Send {
        (**self).detect(request)
    }
}

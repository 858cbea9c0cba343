//! Exact copies: an image whose bytes equal an already-labelled image's is labelled from that
//! image's stored labels, with no detector call.
//!
//! - **Naming the bytes**: the MD5 that ingest found the ETag to be (a single-part upload,
//!   unencrypted or SSE-S3) and the size, with no request; otherwise S3's checksum of the
//!   whole object and its size, from one HEAD (`ChecksumMode=ENABLED`): no read of the object. Where S3 holds none (objects stored
//!   before S3 added a default checksum, multipart uploads with a composite checksum), a
//!   SHA-256 of the bytes, at the cost of one full GET.
//! - **Confirming**: equal CRCs are only a candidate (a CRC can be forged to borrow another
//!   image's labels), so the copy's SHA-256 must equal the original's before anything is
//!   copied. The original's digest is cached on its index entry by the first copy that reads
//!   it. A SHA-256 key needs no confirmation.
//! - **Races**: the first image to register the bytes is their original, for as long as its
//!   labelling lease holds; a copy arriving meanwhile waits for its labels (looking again
//!   every 5 s, as a new message each time, so waits never lead to the dead-letter queue)
//!   rather than paying the detector again. Its labels are copied as soon as the detector
//!   answered (the detection kept on its item), not only once stored. An original that is
//!   gone, refused, labelled by another detector or past its lease with no labels is replaced
//!   by the copy at hand, which then pays.
use std::{future::Future, sync::Arc, time::Duration};

use imgflow_messages::{
    ImageAccepted, ImageLabeled, ImageRecord, ImageStatus, Label, StageMessage,
};
use imgflow_runtime::{
    clock,
    consumer::HandleError,
    ports::{ContentIndex, ContentKey, ImageTable, ObjectLocation, ObjectStore, Original},
    PortError, PortErrorKind,
};
use sha2::{Digest, Sha256};

/// Labels to copy, and whose.
#[derive(Debug, Clone, PartialEq)]
pub struct Copied {
    /// The original's image id.
    pub original: String,
    /// Its key, for the log.
    pub original_key: String,
    /// Its labels: stored, or published and on their way to the store stage.
    pub labels: Vec<Label>,
    /// The model version that produced them.
    pub label_model_version: String,
}

/// What to do with an image that may be a copy.
#[derive(Debug, Clone, PartialEq)]
pub enum Reuse {
    /// Label it with the detector: it is the original of its bytes, or no copy is confirmed.
    Detect,
    /// Its bytes are this labelled image's (SHA-256 confirmed): copy its labels.
    Copy(Box<Copied>),
    /// Its original is being labelled now: look again after `delay`.
    Wait {
        /// The original's image id.
        original: String,
        /// When to look again.
        delay: Duration,
    },
}

/// Decides whether an image is a copy of an already-labelled one.
pub trait Copies: Send + Sync + 'static {
    /// The decision for `accepted`, for `detector`.
    fn reuse(
        &self,
        accepted: &ImageAccepted,
        detector: &str,
    ) -> impl Future<Output = Result<Reuse, HandleError>> + Send;
}

/// Every image is labelled by the detector (`IMGFLOW_REUSE_COPIES=false`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCopies;

impl Copies for NoCopies {
    async fn reuse(&self, _: &ImageAccepted, _: &str) -> Result<Reuse, HandleError> {
        Ok(Reuse::Detect)
    }
}

/// Copies looked for or not (`IMGFLOW_REUSE_COPIES`).
impl<C: Copies> Copies for Option<C> {
    async fn reuse(&self, accepted: &ImageAccepted, detector: &str) -> Result<Reuse, HandleError> {
        match self {
            Some(copies) => copies.reuse(accepted, detector).await,
            None => Ok(Reuse::Detect),
        }
    }
}

/// How long a copy waits for an original being labelled before it looks again: most detector
/// calls take less. The wait sends the message back as a new one (see
/// [`HandleError::requeue`]), so waiting never counts toward the dead-letter queue.
const FIRST_WAIT: Duration = Duration::from_secs(5);

/// Copies found through S3 checksums and the content index.
pub struct ExactCopies<S, X, T> {
    store: Arc<S>,
    index: Arc<X>,
    table: Arc<T>,
    lease: Duration,
}

impl<S: ObjectStore, X: ContentIndex, T: ImageTable> ExactCopies<S, X, T> {
    /// Copies of objects in `store`, registered in `index`, their labels read from `table`;
    /// an original holds its bytes for `lease` (the label queue's visibility timeout).
    pub fn new(store: Arc<S>, index: Arc<X>, table: Arc<T>, lease: Duration) -> Self {
        Self {
            store,
            index,
            table,
            lease,
        }
    }

    /// The bytes' key: S3's checksum, or a SHA-256 read from the object (also returned).
    /// `None` when the object is not the accepted one any more (the detector's path says
    /// what that means).
    async fn content_key(
        &self,
        accepted: &ImageAccepted,
        object: &ObjectLocation,
    ) -> Result<Option<(ContentKey, Option<String>)>, PortError> {
        // Ingest saw the ETag is the bytes' MD5: no request at all, on a versioned bucket, where
        // the version id names these bytes for good (the detector reads that version, a copy
        // is confirmed against it). On an unversioned one the HEAD below also tells whether
        // the key still holds them: an image overwritten since ingest must not become the
        // original of bytes its key no longer holds.
        if let (Some(md5), Some(_)) = (&accepted.content_md5, &accepted.image.version_id) {
            if md5.eq_ignore_ascii_case(&accepted.image.etag) {
                return Ok(Some((
                    ContentKey::from_md5(md5.to_ascii_lowercase(), accepted.size),
                    None,
                )));
            }
        }
        let head = match self.store.head(object).await {
            Err(e) if e.kind == PortErrorKind::NotFound => return Ok(None),
            head => head?,
        };
        if head.etag != accepted.image.etag {
            return Ok(None);
        }
        if let Some(checksum) = head.checksum {
            return Ok(Some((ContentKey::from_checksum(checksum, head.size), None)));
        }
        let Some(sha256) = self
            .sha256_of(object, &accepted.image.etag, head.size)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((
            ContentKey::from_sha256(sha256.clone(), head.size),
            Some(sha256),
        )))
    }

    /// SHA-256 (hex) of the object's `size` bytes, if it still has ETag `etag`.
    async fn sha256_of(
        &self,
        object: &ObjectLocation,
        etag: &str,
        size: u64,
    ) -> Result<Option<String>, PortError> {
        let (head, bytes) = match self.store.get_start(object, size.saturating_sub(1)).await {
            Err(e) if e.kind == PortErrorKind::NotFound => return Ok(None),
            read => read?,
        };
        if head.etag != etag || bytes.len() as u64 != size {
            return Ok(None);
        }
        // Off the stage's one thread: hashing a large image takes milliseconds.
        let digest = tokio::task::spawn_blocking(move || hex(&Sha256::digest(&bytes)))
            .await
            .map_err(|e| PortError::new(PortErrorKind::Fatal, "sha256", e.to_string()))?;
        Ok(Some(digest))
    }

    /// The copy's SHA-256: `known` when naming its bytes computed it, else read now.
    async fn mine(
        &self,
        known: Option<String>,
        accepted: &ImageAccepted,
        object: &ObjectLocation,
        size: u64,
    ) -> Result<Option<String>, PortError> {
        match known {
            Some(digest) => Ok(Some(digest)),
            None => self.sha256_of(object, &accepted.image.etag, size).await,
        }
    }

    /// Whether the copy's bytes are the original's, by SHA-256.
    async fn confirmed(
        &self,
        content: &ContentKey,
        original: &Original,
        mine: Option<String>,
        accepted: &ImageAccepted,
        object: &ObjectLocation,
    ) -> Result<bool, PortError> {
        if content.is_collision_resistant() {
            return Ok(true);
        }
        let theirs = match &original.sha256 {
            Some(digest) => Some(digest.clone()),
            None => {
                let digest = self
                    .sha256_of(&original.object, &original.etag, content.size)
                    .await?;
                if let Some(digest) = &digest {
                    if let Err(e) = self
                        .index
                        .remember_sha256(content, &original.image_id, digest)
                        .await
                    {
                        tracing::info!(error = %e, "could not cache the original's SHA-256");
                    }
                }
                digest
            }
        };
        let Some(theirs) = theirs else {
            return Ok(false);
        };
        let mine = self.mine(mine, accepted, object, content.size).await?;
        Ok(mine.as_deref() == Some(theirs.as_str()))
    }

    async fn decide(&self, accepted: &ImageAccepted, detector: &str) -> Result<Reuse, PortError> {
        let image = &accepted.image;
        let object = ObjectLocation {
            bucket: image.bucket.clone(),
            key: image.key.clone(),
            version_id: image.version_id.clone(),
        };
        let Some((content, mine)) = self.content_key(accepted, &object).await? else {
            return Ok(Reuse::Detect);
        };
        let me = Original {
            image_id: image.image_id.clone(),
            object: object.clone(),
            etag: image.etag.clone(),
            sha256: mine.clone().filter(|_| !content.is_collision_resistant()),
            until: clock::rfc3339_after(self.lease),
        };
        let original = self.index.register(&content, &me).await?;
        if original.image_id == me.image_id {
            return Ok(Reuse::Detect);
        }
        let (record, kept) = match self.table.get_with_kept(&original.image_id).await? {
            Some((record, kept)) => (Some(record), kept),
            None => (None, None),
        };
        if let Some(labels) = labels_of(record.as_ref(), kept.as_deref(), detector) {
            if self
                .confirmed(&content, &original, mine.clone(), accepted, &object)
                .await?
            {
                return Ok(Reuse::Copy(Box::new(labels)));
            }
            return self
                .mismatch(&content, &original, mine, accepted, &object, detector)
                .await;
        }
        let waiting = record
            .as_ref()
            .is_some_and(|r| r.status == ImageStatus::Accepted);
        let left = clock::until(&original.until);
        if waiting && !left.is_zero() {
            // Being labelled now: its labels are kept on its item once the detector answers,
            // usually within seconds.
            return Ok(Reuse::Wait {
                original: original.image_id,
                delay: FIRST_WAIT.min(left).max(Duration::from_secs(1)),
            });
        }
        // Gone, refused, labelled by another detector, or stalled past its lease: this image
        // becomes the original of its bytes.
        let now = self
            .index
            .take_over(&content, &original.image_id, &me)
            .await?;
        if now.image_id == me.image_id {
            tracing::info!(former = %original.image_id, "the original of these bytes has no usable labels; this copy takes its place");
            return Ok(Reuse::Detect);
        }
        Ok(Reuse::Wait {
            original: now.image_id,
            delay: FIRST_WAIT,
        })
    }

    /// Equal checksums, different bytes: a collision or a forgery. The bytes are named again
    /// by their SHA-256, so that the original registered under the checksum (perhaps a forger
    /// who got there first) cannot keep real copies from finding each other.
    async fn mismatch(
        &self,
        content: &ContentKey,
        original: &Original,
        mine: Option<String>,
        accepted: &ImageAccepted,
        object: &ObjectLocation,
        detector: &str,
    ) -> Result<Reuse, PortError> {
        tracing::warn!(
            original = %original.image_id,
            checksum = %content.as_string(),
            "equal S3 checksums but different bytes (SHA-256): not a copy of that image"
        );
        let Some(mine) = self.mine(mine, accepted, object, content.size).await? else {
            return Ok(Reuse::Detect);
        };
        let by_digest = ContentKey::from_sha256(mine, content.size);
        let me = Original {
            image_id: accepted.image.image_id.clone(),
            object: object.clone(),
            etag: accepted.image.etag.clone(),
            sha256: None,
            until: clock::rfc3339_after(self.lease),
        };
        let registered = self.index.register(&by_digest, &me).await?;
        if registered.image_id == me.image_id {
            return Ok(Reuse::Detect);
        }
        let found = self.table.get_with_kept(&registered.image_id).await?;
        let (record, kept) = match found {
            Some((record, kept)) => (Some(record), kept),
            None => (None, None),
        };
        Ok(labels_of(record.as_ref(), kept.as_deref(), detector)
            .map_or(Reuse::Detect, |labels| Reuse::Copy(Box::new(labels))))
    }
}

/// The labels an original offers its copies: stored ones, or a detection kept on its item
/// (published, not yet stored), from `detector`; none when it is gone or has none.
fn labels_of(record: Option<&ImageRecord>, kept: Option<&str>, detector: &str) -> Option<Copied> {
    let record = record?;
    if record.status == ImageStatus::Labeled && record.detector.as_deref() == Some(detector) {
        return Some(Copied {
            original: record.id.clone(),
            original_key: record.key.clone(),
            labels: record.labels.clone()?,
            label_model_version: record.label_model_version.clone().unwrap_or_default(),
        });
    }
    if record.status != ImageStatus::Accepted {
        return None;
    }
    let kept = ImageLabeled::decode(kept?).ok()?;
    (kept.detector == detector && kept.image.image_id == record.id).then(|| Copied {
        original: record.id.clone(),
        original_key: record.key.clone(),
        labels: kept.labels,
        label_model_version: kept.label_model_version,
    })
}

impl<S: ObjectStore, X: ContentIndex, T: ImageTable> Copies for ExactCopies<S, X, T> {
    async fn reuse(&self, accepted: &ImageAccepted, detector: &str) -> Result<Reuse, HandleError> {
        // A deliberate relabel asks the detector again, copies included.
        if accepted.relabel.is_some() {
            return Ok(Reuse::Detect);
        }
        // Finding copies saves money; it never holds up labelling.
        Ok(self
            .decide(accepted, detector)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not look for an exact copy; the detector labels the image");
                Reuse::Detect
            }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

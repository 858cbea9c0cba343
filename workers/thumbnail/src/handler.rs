//! Thumbnail: `ImageAccepted` → the object (one bounded read) → an upright JPEG at
//! `thumbnails/<id>.jpg` → `thumbnail` on the item → the join with the label branch.
use std::sync::Arc;

use bytes::Bytes;
use imgflow_messages::{thumbnail_key, ImageAccepted, StageMessage, Thumbnail, THUMBNAIL_MAX_SIDE};
use imgflow_runtime::{
    clock,
    consumer::{HandleError, Handler},
    join,
    ports::{
        Branch, ImageTable, NearIndex, NearMatch, NearPair, ObjectLocation, ObjectStore,
        PerceptualHash, Publisher, ReceivedMessage, ThumbnailOutcome, ThumbnailWrite,
    },
    PortError, PortErrorKind,
};
use tokio::sync::Semaphore;
use tracing::Span;

/// What the stage may spend on one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailLimits {
    /// Most bytes read of an object (ingest accepts no larger).
    pub max_bytes: u64,
    /// Most bytes of pixels one decode may hold.
    pub max_decoded_bytes: u64,
    /// Decodes at once: they are CPU-bound, so more than the cores only holds more memory.
    pub decodes: usize,
}

impl Default for ThumbnailLimits {
    fn default() -> Self {
        Self {
            max_bytes: 15 * 1024 * 1024,
            max_decoded_bytes: imgflow_imaging::DEFAULT_MAX_DECODED_BYTES,
            decodes: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// No near-duplicate index: hashes are stored on the item, nothing is looked up.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNearIndex;

impl NearIndex for NoNearIndex {
    async fn record(
        &self,
        _: &str,
        _: PerceptualHash,
        _: &str,
    ) -> Result<Vec<NearMatch>, PortError> {
        Ok(Vec::new())
    }

    async fn near(&self, _: &str) -> Result<Vec<NearMatch>, PortError> {
        Ok(Vec::new())
    }

    async fn recent_pairs(&self, _: usize) -> Result<Vec<NearPair>, PortError> {
        Ok(Vec::new())
    }
}

/// The thumbnail stage's logic. `N` is the near-duplicate index the hash goes into.
pub struct ThumbnailHandler<S, T, P, N = NoNearIndex> {
    store: Arc<S>,
    table: Arc<T>,
    completions: Arc<P>,
    near: Arc<N>,
    limits: ThumbnailLimits,
    decodes: Arc<Semaphore>,
}

impl<S: ObjectStore, T: ImageTable, P: Publisher> ThumbnailHandler<S, T, P> {
    /// A handler reading and writing `store`, recording in `table` and announcing completions
    /// to `completions`.
    pub fn new(store: Arc<S>, table: Arc<T>, completions: Arc<P>, limits: ThumbnailLimits) -> Self {
        let decodes = Arc::new(Semaphore::new(limits.decodes.max(1)));
        Self {
            store,
            table,
            completions,
            near: Arc::new(NoNearIndex),
            limits,
            decodes,
        }
    }

    /// The handler, recording each hash in `near` and linking near-duplicates.
    pub fn finding_near<N: NearIndex>(self, near: Arc<N>) -> ThumbnailHandler<S, T, P, N> {
        ThumbnailHandler {
            store: self.store,
            table: self.table,
            completions: self.completions,
            near,
            limits: self.limits,
            decodes: self.decodes,
        }
    }
}

impl<S: ObjectStore, T: ImageTable, P: Publisher, N: NearIndex> ThumbnailHandler<S, T, P, N> {
    /// Records the hash and links the image with its near-duplicates, once the image is
    /// complete: near-duplicates are for people to see, and never hold an image up. A failure
    /// that may pass retries the message for its first two deliveries; after that, or when it
    /// never will (a missing grant), the links are given up, counted and logged.
    async fn find_near(
        &self,
        image_id: &str,
        hash: &str,
        at: &str,
        receive_count: u32,
    ) -> Result<(), HandleError> {
        let Some(hash) = PerceptualHash::from_hex(hash) else {
            return Ok(());
        };
        match self.near.record(image_id, hash, at).await {
            Ok(found) if found.is_empty() => {}
            Ok(found) => tracing::info!(
                near_duplicates = found.len(),
                nearest = %found[0].image_id,
                distance = found[0].distance,
                "near-duplicates found"
            ),
            Err(e) if e.is_transient() && receive_count < 3 => {
                return Err(HandleError::from_port("near_index_failed", e))
            }
            Err(e) => {
                metrics::counter!("imgflow_near_lookups_failed_total").increment(1);
                tracing::warn!(error = %e, "could not look for near-duplicates; the image goes on without");
            }
        }
        Ok(())
    }

    /// The thumbnail of the accepted object, or why there is none. Errors are the ones worth a
    /// retry (S3 unreachable, throttled).
    async fn make(&self, accepted: &ImageAccepted) -> Result<ThumbnailOutcome, HandleError> {
        let image = &accepted.image;
        let location = ObjectLocation {
            bucket: image.bucket.clone(),
            key: image.key.clone(),
            version_id: image.version_id.clone(),
        };
        // One read of at most the size ingest accepts: a larger object (the key overwritten
        // since) is refused without holding it.
        let (head, bytes) = match self
            .store
            .get_start(&location, self.limits.max_bytes - 1)
            .await
        {
            Ok(found) => found,
            Err(e) if e.kind == PortErrorKind::NotFound => {
                return Ok(ThumbnailOutcome::Failed(
                    "the object is no longer in the bucket".into(),
                ))
            }
            Err(e) => return Err(HandleError::from_port("object_read_failed", e)),
        };
        if head.etag != image.etag || head.size > bytes.len() as u64 {
            return Ok(ThumbnailOutcome::Failed(
                "the object changed since ingest accepted it".into(),
            ));
        }
        let permit = Arc::clone(&self.decodes)
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let budget = self.limits.max_decoded_bytes;
        let made = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            imgflow_imaging::thumbnail_and_hash(&bytes, THUMBNAIL_MAX_SIDE, budget)
        })
        .await;
        let ((jpeg, width, height), hash) = match made {
            Ok(Ok(made)) => made,
            Ok(Err(e)) => return Ok(ThumbnailOutcome::Failed(format!("cannot decode: {e}"))),
            // A decoder bug on these bytes would panic on every delivery.
            Err(_) => {
                return Ok(ThumbnailOutcome::Failed(
                    "the decoder failed on this image".into(),
                ))
            }
        };
        let key = thumbnail_key(&image.image_id);
        self.store
            .put(&image.bucket, &key, Bytes::from(jpeg), "image/jpeg")
            .await
            .map_err(|e| HandleError::from_port("thumbnail_write_failed", e))?;
        Ok(ThumbnailOutcome::Made(Thumbnail {
            key,
            width,
            height,
            made_at: Some(clock::now_rfc3339()),
            perceptual_hash: hash.map(|h| h.to_hex()),
        }))
    }
}

impl<S: ObjectStore, T: ImageTable, P: Publisher, N: NearIndex> Handler
    for ThumbnailHandler<S, T, P, N>
{
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandleError> {
        let accepted = ImageAccepted::decode(&message.body)?;
        let image = &accepted.image;
        Span::current().record("image_id", image.image_id.as_str());
        Span::current().record("trace_id", image.trace_id.as_str());
        Span::current().record("key", image.key.as_str());

        let outcome = self.make(&accepted).await?;
        let write = self
            .table
            .write_thumbnail(&image.image_id, &outcome)
            .await
            .map_err(|e| HandleError::from_port("table_write_failed", e))?;
        let join = match write {
            ThumbnailWrite::Written(join) => join,
            ThumbnailWrite::Refused => {
                // Deleted while this ran: ingest may have removed the thumbnail before it
                // was written, so it is removed here too.
                if let ThumbnailOutcome::Made(thumbnail) = &outcome {
                    self.store
                        .delete(&image.bucket, &thumbnail.key)
                        .await
                        .map_err(|e| HandleError::from_port("thumbnail_delete_failed", e))?;
                }
                tracing::info!("the image was deleted; no thumbnail kept");
                return Ok(());
            }
        };
        match &outcome {
            ThumbnailOutcome::Made(t) => {
                tracing::info!(width = t.width, height = t.height, "thumbnail stored")
            }
            ThumbnailOutcome::Failed(reason) => tracing::info!(%reason, "no thumbnail"),
        }
        join::complete_if_ready(
            self.table.as_ref(),
            self.completions.as_ref(),
            image,
            Branch::Thumbnail,
            join,
            &message.message_id,
            "",
        )
        .await?;
        if let ThumbnailOutcome::Made(Thumbnail {
            perceptual_hash: Some(hash),
            ..
        }) = &outcome
        {
            self.find_near(
                &image.image_id,
                hash,
                &image.received_at,
                message.receive_count,
            )
            .await?;
        }
        Ok(())
    }
}

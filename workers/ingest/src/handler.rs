//! Ingest: S3 event → `accepted`, `rejected` or `missing` item (+ `ImageAccepted`); every
//! event placed in its key's history (the object ledger), which decides which images are no
//! longer the key's object: `replaced` by a later upload or `deleted`, out of the gallery and
//! the label index.
use std::{collections::BTreeMap, sync::Arc};

use imgflow_catalog::ports::LabelIndex;
use imgflow_imaging::probe::{Check, ImageInfo, Limits, HEAD_BYTES, TAIL_BYTES};
use imgflow_messages::{
    image_id, parse_notification, thumbnail_key, ImageAccepted, ImageRecord, ImageRef, ImageStatus,
    Notification, ObjectChange, ObjectEvent, StageMessage, SCHEMA_VERSION,
};
use imgflow_runtime::{
    clock,
    consumer::{HandleError, Handler},
    ledger::{Decision, Fate, KeyChange},
    ports::{
        Ending, GoneImage, ImageTable, ObjectHead, ObjectLedger, ObjectLocation, ObjectStore,
        Publisher, ReceivedMessage, Revival, StoredLabels, WriteOutcome, PURGED,
    },
    PortError, PortErrorKind,
};
use tracing::{instrument, Span};

/// The ingest stage's logic. `index` is the index table: the object ledger that orders a
/// key's creations and deletions, and the label index a deletion cleans.
pub struct IngestHandler<S, T, P, X> {
    store: Arc<S>,
    table: Arc<T>,
    publisher: Arc<P>,
    index: Arc<X>,
    limits: Limits,
    incoming_prefix: String,
    keep_gps: bool,
}

/// What ingest concluded about one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A JPEG or PNG within limits, with the EXIF metadata its first bytes carry.
    Accepted {
        head: ObjectHead,
        info: ImageInfo,
        exif: BTreeMap<String, String>,
    },
    /// Not labelable; the reason is for the person who uploaded it.
    Rejected {
        head: ObjectHead,
        info: Option<ImageInfo>,
        reason: String,
    },
    /// The object (or the version the event named) is gone.
    Missing { reason: String },
}

impl<S, T, P, X> IngestHandler<S, T, P, X>
where
    S: ObjectStore,
    T: ImageTable,
    P: Publisher,
    X: ObjectLedger + LabelIndex,
{
    /// A handler reading from `store`, writing `table` and `index`, publishing to `publisher`.
    pub fn new(
        store: Arc<S>,
        table: Arc<T>,
        publisher: Arc<P>,
        index: Arc<X>,
        limits: Limits,
        incoming_prefix: &str,
    ) -> Self {
        Self {
            store,
            table,
            publisher,
            index,
            limits,
            incoming_prefix: incoming_prefix.to_owned(),
            keep_gps: false,
        }
    }

    /// Keeps the GPS position from EXIF (`IMGFLOW_KEEP_GPS`); dropped by default, as personal
    /// data.
    pub fn keep_gps(mut self, keep: bool) -> Self {
        self.keep_gps = keep;
        self
    }

    #[instrument(skip_all, fields(image_id, trace_id, key = %event.key))]
    async fn ingest(&self, event: ObjectEvent) -> Result<(), HandleError> {
        if !event.key.starts_with(&self.incoming_prefix) {
            tracing::info!(prefix = %self.incoming_prefix, "object outside the incoming prefix; ignored");
            return Ok(());
        }
        match event.change() {
            ObjectChange::Created => self.create(event).await,
            ObjectChange::KeyRemoved => self.remove_key(&event).await,
            ObjectChange::VersionRemoved(version) => self.remove_version(&event, &version).await,
            ObjectChange::Other => {
                tracing::info!(event_name = %event.event_name, "neither a creation nor a deletion; ignored");
                Ok(())
            }
        }
    }

    /// A new object under the prefix: its verdict, its place in the key's history, and, if it
    /// is the key's object, `ImageAccepted`.
    async fn create(&self, event: ObjectEvent) -> Result<(), HandleError> {
        let location = ObjectLocation {
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            version_id: event.version_id.clone(),
        };
        let verdict = self.inspect(&location, event.etag.as_deref()).await?;
        let (etag, version_id) = match &verdict {
            Verdict::Accepted { head, .. } | Verdict::Rejected { head, .. } => (
                head.etag.clone(),
                head.version_id.clone().or(event.version_id.clone()),
            ),
            Verdict::Missing { .. } => (
                event.etag.clone().unwrap_or_default(),
                event.version_id.clone(),
            ),
        };
        // The id comes from the event's identity of the object, so every delivery of this event
        // (and a duplicate upload of identical content to the same key) maps to one item.
        let id = image_id(
            &event.bucket,
            &event.key,
            version_id.as_deref().unwrap_or(&etag),
        );
        let trace_id = uuid::Uuid::new_v4().to_string();
        Span::current().record("image_id", id.as_str());
        Span::current().record("trace_id", trace_id.as_str());
        Span::current().record("key", event.key.as_str());

        let received_at = if event.event_time.is_empty() {
            clock::now_rfc3339()
        } else {
            clock::normalize_rfc3339(&event.event_time)
        };
        let now = clock::now_rfc3339();
        let mut record = ImageRecord::new(
            id.clone(),
            event.bucket.clone(),
            event.key.clone(),
            etag.clone(),
            received_at.clone(),
            ImageStatus::Accepted,
        );
        record.version_id = version_id.clone();
        record.trace_id = Some(trace_id.clone());
        match &verdict {
            Verdict::Accepted { head, info, exif } => {
                fill(&mut record, head, Some(info));
                record.exif = (!exif.is_empty()).then(|| exif.clone());
                record.accepted_at = Some(now.clone());
            }
            Verdict::Rejected { head, info, reason } => {
                fill(&mut record, head, info.as_ref());
                record.status = ImageStatus::Rejected;
                record.reason = Some(reason.clone());
            }
            Verdict::Missing { reason } => {
                record.size = event.size;
                record.status = ImageStatus::Missing;
                record.reason = Some(reason.clone());
            }
        }

        // The verdict before the ledger: an id enters the key's history only once its item
        // exists, so whichever event later decides its fate finds the item to mark.
        let mut written = self.write_verdict(&record).await?;
        let decision = self.place(&event, KeyChange::Created(&id)).await?;
        self.apply_fates(&event, &decision, Some(&id)).await?;
        let fate = decision
            .fates
            .iter()
            .find(|(fate_of, _)| *fate_of == id)
            .map_or(Fate::Replaced, |(_, fate)| *fate);
        if let Some(status) = gone_status(fate) {
            self.end_image(&event, &id, status, decision.version)
                .await?;
            tracing::info!(%status, "a later event on the key is recorded; image not labelled");
            return Ok(());
        }
        // The same bytes uploaded to the key again (the same id), or an item a redelivery finds
        // written: record that this image is the key's object, bringing it back if an older
        // decision ended it.
        if written == WriteOutcome::Superseded || decision.recreated {
            let revival = self
                .table
                .live(&id, decision.version)
                .await
                .map_err(|e| HandleError::from_port("table_write_failed", e))?;
            if revival == Revival::Revived {
                tracing::info!("uploaded again after it was deleted or replaced; processed anew");
                written = self.write_verdict(&record).await?;
            }
        }
        if written == WriteOutcome::Superseded {
            tracing::info!("image already labeled, deleted or replaced; event ignored");
            return Ok(());
        }
        let Verdict::Accepted { head, info, .. } = verdict else {
            metrics::counter!(
                "imgflow_images_rejected_total",
                "stage" => "ingest",
                "status" => record.status.as_str()
            )
            .increment(1);
            tracing::info!(status = %record.status, reason = record.reason.as_deref().unwrap_or(""), "image not accepted");
            return Ok(());
        };
        let accepted = ImageAccepted {
            schema_version: SCHEMA_VERSION,
            image: ImageRef {
                image_id: id,
                trace_id,
                bucket: event.bucket,
                key: event.key,
                version_id,
                etag,
                received_at,
            },
            content_type: info.format.content_type().to_owned(),
            size: head.size,
            width: info.width,
            height: info.height,
            accepted_at: now,
            relabel: None,
            content_md5: head.etag_is_md5.then(|| head.etag.clone()),
        };
        self.publisher
            .publish(accepted.encode())
            .await
            .map_err(|e| HandleError::from_port("publish_failed", e))?;
        tracing::info!(width = info.width, height = info.height, "image accepted");
        Ok(())
    }

    async fn write_verdict(&self, record: &ImageRecord) -> Result<WriteOutcome, HandleError> {
        self.table
            .write_verdict(record)
            .await
            .map_err(|e| HandleError::from_port("table_write_failed", e))
    }

    /// The key's object was removed: whatever the key held at that point in its history is
    /// `deleted`.
    async fn remove_key(&self, event: &ObjectEvent) -> Result<(), HandleError> {
        let decision = self.place(event, KeyChange::Removed).await?;
        let ended = self.apply_fates(event, &decision, None).await?;
        tracing::info!(images = ended, event_name = %event.event_name, "object deleted");
        Ok(())
    }

    /// Places the event in its key's history (the object ledger); the fates it decides.
    async fn place(
        &self,
        event: &ObjectEvent,
        change: KeyChange<'_>,
    ) -> Result<Decision, HandleError> {
        self.index
            .record(
                &event.bucket,
                &event.key,
                event.sequencer.as_deref(),
                &event.event_time,
                change,
            )
            .await
            .map_err(|e| HandleError::from_port("ledger_write_failed", e))
    }

    /// One version was deleted for good: its image is `deleted`, and nothing brings it back.
    async fn remove_version(&self, event: &ObjectEvent, version: &str) -> Result<(), HandleError> {
        let id = image_id(&event.bucket, &event.key, version);
        Span::current().record("image_id", id.as_str());
        self.end_image(event, &id, ImageStatus::Deleted, PURGED)
            .await?;
        tracing::info!(event_name = %event.event_name, "object version deleted");
        Ok(())
    }

    /// Ends the images other than `own` that the ledger's decision says are no longer the
    /// key's object; how many.
    async fn apply_fates(
        &self,
        event: &ObjectEvent,
        decision: &Decision,
        own: Option<&str>,
    ) -> Result<usize, HandleError> {
        let mut ended = 0;
        for (id, fate) in &decision.fates {
            if Some(id.as_str()) == own {
                continue;
            }
            if let Some(status) = gone_status(*fate) {
                self.end_image(event, id, status, decision.version).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Marks one image deleted or replaced (unless a newer decision holds), drops its
    /// label-index entries and deletes its thumbnail. Idempotent, so a failure part-way
    /// retries the whole message. The item is marked first: a thumbnail written after this
    /// point is refused and removed by the thumbnail stage.
    async fn end_image(
        &self,
        event: &ObjectEvent,
        id: &str,
        status: ImageStatus,
        version: u64,
    ) -> Result<(), HandleError> {
        let gone = GoneImage {
            image_id: id.to_owned(),
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            status,
            at: clock::now_rfc3339(),
            version,
        };
        let ending = self
            .table
            .end(&gone)
            .await
            .map_err(|e| HandleError::from_port("table_write_failed", e))?;
        let Ending::Ended(labels) = ending else {
            // A newer decision holds: the image may be its key's object again, thumbnail and
            // label entries included.
            tracing::info!(
                image = id,
                "a newer event decided this image; left as it is"
            );
            return Ok(());
        };
        if let Some(labels) = labels {
            let none = StoredLabels {
                labeled_at: labels.labeled_at.clone(),
                labels: Vec::new(),
            };
            self.index
                .index_labels(id, &none, Some(&labels))
                .await
                .map_err(|e| HandleError::from_port("index_write_failed", e))?;
        }
        self.store
            .delete(&event.bucket, &thumbnail_key(id))
            .await
            .map_err(|e| HandleError::from_port("thumbnail_delete_failed", e))?;
        Ok(())
    }

    /// Decides what the object is from a few small ranged GETs: the first one also answers
    /// what a HEAD would (size, ETag, version).
    pub async fn inspect(
        &self,
        location: &ObjectLocation,
        event_etag: Option<&str>,
    ) -> Result<Verdict, HandleError> {
        let (head, mut first) = match self.store.get_start(location, HEAD_BYTES - 1).await {
            Ok(start) => start,
            Err(e) if e.kind == PortErrorKind::NotFound => return Ok(missing()),
            Err(e) => return Err(HandleError::from_port("object_read_failed", e)),
        };
        // Unversioned buckets: a different ETag means the key was overwritten after this event;
        // the newer upload has its own event and its own item.
        if location.version_id.is_none() && event_etag.is_some_and(|etag| etag != head.etag) {
            return Ok(Verdict::Missing {
                reason: "object was replaced before it could be processed; the newer upload is processed on its own".into(),
            });
        }
        let reject = |head: &ObjectHead, info, reason: String| Verdict::Rejected {
            head: head.clone(),
            info,
            reason,
        };
        // Refused on the first read's answer: an empty or oversized object costs no more.
        if let Err(reason) = self.limits.check_size(head.size) {
            return Ok(reject(&head, None, reason));
        }
        let read = |first, last| self.read(location, first, last);
        let mut last = None;
        let info = loop {
            match self.limits.check(head.size, &first, last.as_deref()) {
                Check::Valid(info) => break info,
                Check::Invalid { info, reason } => return Ok(reject(&head, info, reason)),
                Check::NeedHead(n) => match read(0, n as u64 - 1).await? {
                    Some(bytes) => first = bytes,
                    None => return Ok(missing()),
                },
                Check::NeedTail => {
                    let from = head.size.saturating_sub(TAIL_BYTES);
                    match read(from, head.size - 1).await? {
                        Some(bytes) => last = Some(bytes),
                        None => return Ok(missing()),
                    }
                }
            }
        };
        // Metadata is a bonus: bad EXIF costs a log line, never the image.
        let exif = imgflow_imaging::exif::read(&first, self.keep_gps).unwrap_or_else(|e| {
            tracing::info!(error = %e, "EXIF ignored");
            BTreeMap::new()
        });
        Ok(Verdict::Accepted { head, info, exif })
    }

    /// A ranged read; `None` when the object vanished meanwhile.
    async fn read(
        &self,
        location: &ObjectLocation,
        first: u64,
        last: u64,
    ) -> Result<Option<bytes::Bytes>, HandleError> {
        match self.store.get_range(location, first, last).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(PortError {
                kind: PortErrorKind::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(HandleError::from_port("object_read_failed", e)),
        }
    }
}

/// The status of an image whose fate is not to be its key's object.
fn gone_status(fate: Fate) -> Option<ImageStatus> {
    match fate {
        Fate::Live => None,
        Fate::Replaced => Some(ImageStatus::Replaced),
        Fate::Deleted => Some(ImageStatus::Deleted),
    }
}

fn missing() -> Verdict {
    Verdict::Missing {
        reason: "object was deleted before it could be processed".into(),
    }
}

fn fill(record: &mut ImageRecord, head: &ObjectHead, info: Option<&ImageInfo>) {
    record.size = Some(head.size);
    if let Some(info) = info {
        record.content_type = Some(info.format.content_type().to_owned());
        record.width = Some(info.width);
        record.height = Some(info.height);
    }
}

impl<S, T, P, X> Handler for IngestHandler<S, T, P, X>
where
    S: ObjectStore,
    T: ImageTable,
    P: Publisher,
    X: ObjectLedger + LabelIndex,
{
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandleError> {
        let notification = parse_notification(&message.body)
            .map_err(|e| HandleError::dead_letter("malformed_event", e))?;
        match notification {
            Notification::TestEvent => {
                tracing::info!("s3:TestEvent received; deleted");
                Ok(())
            }
            // A failure retries the whole message; events already done are idempotent.
            Notification::Objects(events) => {
                for event in events {
                    self.ingest(event).await?;
                }
                Ok(())
            }
        }
    }
}

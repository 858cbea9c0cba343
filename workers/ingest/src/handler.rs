//! Ingest: S3 event → `accepted`, `rejected` or `missing` item (+ `ImageAccepted`).
use std::sync::Arc;

use imgflow_imaging::probe::{Check, ImageInfo, Limits, HEAD_BYTES, TAIL_BYTES};
use imgflow_messages::{
    image_id, parse_notification, ImageAccepted, ImageRecord, ImageRef, ImageStatus, Notification,
    ObjectEvent, StageMessage, SCHEMA_VERSION,
};
use imgflow_runtime::{
    clock,
    consumer::{HandleError, Handler},
    ports::{
        ImageTable, ObjectHead, ObjectLocation, ObjectStore, Publisher, ReceivedMessage,
        WriteOutcome,
    },
    PortError, PortErrorKind,
};
use tracing::{instrument, Span};

/// The ingest stage's logic.
pub struct IngestHandler<S, T, P> {
    store: Arc<S>,
    table: Arc<T>,
    publisher: Arc<P>,
    limits: Limits,
    incoming_prefix: String,
}

/// What ingest concluded about one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A JPEG or PNG within limits.
    Accepted { head: ObjectHead, info: ImageInfo },
    /// Not labelable; the reason is for the person who uploaded it.
    Rejected {
        head: ObjectHead,
        info: Option<ImageInfo>,
        reason: String,
    },
    /// The object (or the version the event named) is gone.
    Missing { reason: String },
}

impl<S: ObjectStore, T: ImageTable, P: Publisher> IngestHandler<S, T, P> {
    /// A handler reading from `store`, writing `table`, publishing to `publisher`.
    pub fn new(
        store: Arc<S>,
        table: Arc<T>,
        publisher: Arc<P>,
        limits: Limits,
        incoming_prefix: &str,
    ) -> Self {
        Self {
            store,
            table,
            publisher,
            limits,
            incoming_prefix: incoming_prefix.to_owned(),
        }
    }

    #[instrument(skip_all, fields(image_id, trace_id, key = %event.key))]
    async fn ingest(&self, event: ObjectEvent) -> Result<(), HandleError> {
        if !event.is_object_created() {
            tracing::info!(event_name = %event.event_name, "not an ObjectCreated event; ignored");
            return Ok(());
        }
        if !event.key.starts_with(&self.incoming_prefix) {
            tracing::info!(prefix = %self.incoming_prefix, "object outside the incoming prefix; ignored");
            return Ok(());
        }
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
            Verdict::Accepted { head, info } => {
                fill(&mut record, head, Some(info));
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

        let written = self
            .table
            .write_verdict(&record)
            .await
            .map_err(|e| HandleError::from_port("table_write_failed", e))?;
        if written == WriteOutcome::Superseded {
            tracing::info!("image already labeled; event ignored");
            return Ok(());
        }
        let Verdict::Accepted { head, info } = verdict else {
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
        };
        self.publisher
            .publish(accepted.encode())
            .await
            .map_err(|e| HandleError::from_port("publish_failed", e))?;
        tracing::info!(width = info.width, height = info.height, "image accepted");
        Ok(())
    }

    /// Decides what the object is from a HEAD and at most a few small ranged GETs.
    pub async fn inspect(
        &self,
        location: &ObjectLocation,
        event_etag: Option<&str>,
    ) -> Result<Verdict, HandleError> {
        let head = match self.store.head(location).await {
            Ok(head) => head,
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
        // Refused before any read: an empty or oversized object costs no GET.
        if let Err(reason) = self.limits.check_size(head.size) {
            return Ok(reject(&head, None, reason));
        }
        let read = |first, last| self.read(location, first, last);
        let mut first = match read(0, HEAD_BYTES.min(head.size) - 1).await? {
            Some(bytes) => bytes,
            None => return Ok(missing()),
        };
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
        Ok(Verdict::Accepted { head, info })
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

impl<S: ObjectStore, T: ImageTable, P: Publisher> Handler for IngestHandler<S, T, P> {
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

//! In-memory ports for handler and consumer tests (feature `test-util`). They keep the
//! semantics handlers rely on (conditional writes, redelivery) and count calls, so tests
//! assert outcomes rather than interactions.
use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use imgflow_messages::Label;

use crate::{
    ports::{
        DetectRequest, Detection, FullChecksum, LabelDetector, ObjectHead, ObjectLocation,
        ObjectStore, Publisher, PutResult, ReceivedMessage,
    },
    PortError, PortErrorKind,
};

mod calls;
mod content;
mod ledger;
mod near;
mod queue;
mod table;

pub use calls::FakeCallCounter;
pub use content::FakeContentIndex;
pub use ledger::FakeLedger;
pub use near::FakeNearIndex;
pub use queue::FakeQueue;
pub use table::FakeTable;

/// A message as a queue would deliver it the first time.
pub fn delivered(body: impl Into<String>) -> ReceivedMessage {
    delivered_as(body, "m1")
}

/// A message as [`delivered`], with its own SQS message id (a duplicate is another message).
pub fn delivered_as(body: impl Into<String>, message_id: &str) -> ReceivedMessage {
    ReceivedMessage {
        message_id: message_id.into(),
        receipt_handle: "r1".into(),
        body: body.into(),
        receive_count: 1,
        attributes: HashMap::new(),
    }
}

/// Records what is published, optionally failing its first calls.
#[derive(Debug, Default)]
pub struct FakePublisher {
    published: Mutex<Vec<String>>,
    failures: Mutex<VecDeque<PortErrorKind>>,
}

impl FakePublisher {
    /// Fails the next publishes with these kinds, in order, then publishes normally.
    pub fn failing_first(self, kinds: impl IntoIterator<Item = PortErrorKind>) -> Self {
        self.failures.lock().unwrap().extend(kinds);
        self
    }

    /// Bodies published so far.
    pub fn published(&self) -> Vec<String> {
        self.published.lock().unwrap().clone()
    }
}

impl Publisher for FakePublisher {
    async fn publish(&self, body: String) -> Result<(), PortError> {
        if let Some(kind) = self.failures.lock().unwrap().pop_front() {
            return Err(PortError::new(
                kind,
                "fake:Publish",
                format!("injected {}", kind.as_str()),
            ));
        }
        self.published.lock().unwrap().push(body);
        Ok(())
    }
}

/// Objects in memory, unversioned; the ETag is a hash of the content.
#[derive(Debug, Default)]
pub struct FakeObjectStore {
    objects: Mutex<HashMap<(String, String), Bytes>>,
    forged: Mutex<HashMap<(String, String), String>>,
    no_checksums: AtomicBool,
    range_reads: AtomicUsize,
    full_reads: AtomicUsize,
    heads: AtomicUsize,
}

fn key_of(o: &ObjectLocation) -> (String, String) {
    (o.bucket.clone(), o.key.clone())
}

impl FakeObjectStore {
    /// Stores an object directly.
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Bytes>) -> String {
        let body = body.into();
        let etag = etag_of(&body);
        self.objects
            .lock()
            .unwrap()
            .insert((bucket.into(), key.into()), body);
        etag
    }

    /// Removes an object.
    pub fn remove(&self, bucket: &str, key: &str) {
        self.objects
            .lock()
            .unwrap()
            .remove(&(bucket.into(), key.into()));
    }

    /// Makes the object's checksum read `value`, as a forger of a CRC could.
    pub fn forge_checksum(&self, bucket: &str, key: &str, value: &str) {
        self.forged
            .lock()
            .unwrap()
            .insert((bucket.into(), key.into()), value.into());
    }

    /// Answers no checksum from now on, as S3 for objects stored before it kept one.
    pub fn without_checksums(&self) {
        self.no_checksums.store(true, Ordering::SeqCst);
    }

    /// How many whole-object GETs were made.
    pub fn full_reads(&self) -> usize {
        self.full_reads.load(Ordering::SeqCst)
    }

    /// How many HEADs were made.
    pub fn heads(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }

    /// How many ranged GETs were made (reads must stay small).
    pub fn range_reads(&self) -> usize {
        self.range_reads.load(Ordering::SeqCst)
    }

    fn find(&self, o: &ObjectLocation) -> Result<Bytes, PortError> {
        self.objects
            .lock()
            .unwrap()
            .get(&(o.bucket.clone(), o.key.clone()))
            .cloned()
            .ok_or_else(|| PortError::new(PortErrorKind::NotFound, "s3", "NoSuchKey"))
    }
}

/// The fake's ETag: a hash of the content, like S3's MD5 for single-part uploads.
pub fn etag_of(body: &[u8]) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    format!("{:016x}", h.finish())
}

impl FakeObjectStore {
    fn describe(&self, object: &ObjectLocation) -> Result<ObjectHead, PortError> {
        let body = self.find(object)?;
        let forged = self.forged.lock().unwrap().get(&key_of(object)).cloned();
        Ok(ObjectHead {
            size: body.len() as u64,
            etag: etag_of(&body),
            version_id: None,
            // S3 answers a checksum on HEAD only; a 64-bit hash stands in for a CRC.
            checksum: (!self.no_checksums.load(Ordering::SeqCst)).then(|| FullChecksum {
                algorithm: "crc64nvme".into(),
                value: forged.unwrap_or_else(|| etag_of(&body)),
            }),
            // A hash of the bytes, as S3's MD5 of a single-part upload.
            etag_is_md5: true,
        })
    }
}

impl ObjectStore for FakeObjectStore {
    async fn head(&self, object: &ObjectLocation) -> Result<ObjectHead, PortError> {
        self.heads.fetch_add(1, Ordering::SeqCst);
        self.describe(object)
    }

    async fn get_start(
        &self,
        object: &ObjectLocation,
        last: u64,
    ) -> Result<(ObjectHead, Bytes), PortError> {
        let mut head = self.describe(object)?;
        // A ranged GET carries no checksum of the whole object.
        head.checksum = None;
        let bytes = self.get_range(object, 0, last).await?;
        Ok((head, bytes))
    }

    async fn get_range(
        &self,
        object: &ObjectLocation,
        first: u64,
        last: u64,
    ) -> Result<Bytes, PortError> {
        self.range_reads.fetch_add(1, Ordering::SeqCst);
        let body = self.find(object)?;
        let end = (last as usize + 1).min(body.len());
        Ok(body.slice((first as usize).min(end)..end))
    }

    async fn get(&self, object: &ObjectLocation) -> Result<Bytes, PortError> {
        self.full_reads.fetch_add(1, Ordering::SeqCst);
        self.find(object)
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        _content_type: &str,
    ) -> Result<PutResult, PortError> {
        Ok(PutResult {
            etag: self.insert(bucket, key, body),
            version_id: None,
        })
    }
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PortError> {
        self.remove(bucket, key);
        Ok(())
    }
}

/// A detector answering with fixed labels, optionally failing its first calls.
#[derive(Debug)]
pub struct FakeDetector {
    labels: Vec<Label>,
    failures: Mutex<VecDeque<PortErrorKind>>,
    calls: AtomicUsize,
    throttled: AtomicUsize,
    delay: Duration,
    throttle_window: Option<Duration>,
    first_call: Mutex<Option<tokio::time::Instant>>,
    name: &'static str,
}

impl FakeDetector {
    /// Always answers `labels`.
    pub fn new(labels: Vec<Label>) -> Self {
        Self {
            labels,
            failures: Mutex::new(VecDeque::new()),
            calls: AtomicUsize::new(0),
            throttled: AtomicUsize::new(0),
            delay: Duration::ZERO,
            throttle_window: None,
            first_call: Mutex::new(None),
            name: "fake",
        }
    }

    /// Records its labels under `name` (`fake` by default): a real detector's name, where a
    /// test goes through a command that accepts only those.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Throttles every other call during `window` from the first call (a saturated service).
    pub fn throttling_half_for(mut self, window: Duration) -> Self {
        self.throttle_window = Some(window);
        self
    }

    /// Fails the next calls with these kinds, in order, then answers normally.
    pub fn failing_first(self, kinds: impl IntoIterator<Item = PortErrorKind>) -> Self {
        self.failures.lock().unwrap().extend(kinds);
        self
    }

    /// Takes `delay` per call.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Calls so far, failed ones included.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Calls answered with an injected throttle.
    pub fn throttled(&self) -> usize {
        self.throttled.load(Ordering::SeqCst)
    }
}

impl LabelDetector for FakeDetector {
    fn name(&self) -> &str {
        self.name
    }

    async fn detect(&self, _request: &DetectRequest) -> Result<Detection, PortError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(window) = self.throttle_window {
            let started = *self
                .first_call
                .lock()
                .unwrap()
                .get_or_insert_with(tokio::time::Instant::now);
            if started.elapsed() < window && call % 2 == 1 {
                self.throttled.fetch_add(1, Ordering::SeqCst);
                return Err(PortError::new(
                    PortErrorKind::Throttled,
                    "fake:DetectLabels",
                    "injected throttle",
                ));
            }
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if let Some(kind) = self.failures.lock().unwrap().pop_front() {
            return Err(PortError::new(
                kind,
                "fake:DetectLabels",
                format!("injected {}", kind.as_str()),
            ));
        }
        Ok(Detection {
            labels: self.labels.clone(),
            label_model_version: "fake-1".into(),
        })
    }
}

/// A deletion of `image_id` decided at ledger version `version`, for tests that end an image
/// directly ([`crate::ports::ImageTable::end`]).
pub fn deletion(image_id: &str, version: u64) -> crate::ports::GoneImage {
    crate::ports::GoneImage {
        image_id: image_id.to_owned(),
        bucket: "bucket".into(),
        key: "incoming/deleted.png".into(),
        status: imgflow_messages::ImageStatus::Deleted,
        at: crate::clock::now_rfc3339(),
        version,
    }
}

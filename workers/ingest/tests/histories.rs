//! Model-based histories: generated S3 histories on two keys (puts, overwrites, deletions,
//! delete markers, permanent deletions of versions, lifecycle expiry, backfills), on an
//! unversioned and a versioned bucket, whose events are delivered one to three times each, in
//! any order, interleaved with the history itself, with crashes between the handler's writes
//! and the store stage labelling images meanwhile. The real ingest handler runs over fakes
//! that enforce DynamoDB's conditions and item limit; after every history the catalog must be
//! what in-order, exactly-once processing of the same history gives. proptest shrinks a
//! failure to its shortest history and prints it.
use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use imgflow_catalog::{fakes::FakeLabelIndex, ports::LabelIndex};
use imgflow_imaging::probe::Limits;
use imgflow_ingest::IngestHandler;
use imgflow_messages::{created_notification, image_id, ImageAccepted, ImageStatus, StageMessage};
use imgflow_runtime::{
    consumer::Handler,
    fakes::{self, etag_of, FakePublisher, FakeTable},
    ports::{
        ImageTable, LabelsWrite, ObjectHead, ObjectLocation, ObjectStore, PutResult, StoredLabels,
    },
    PortError, PortErrorKind,
};
use proptest::prelude::*;

const BUCKET: &str = "imgflow-images";
const KEYS: [&str; 2] = ["incoming/a.png", "incoming/b.png"];

/// One step of a history: something S3 does, or a delivery, or the store stage at work.
#[derive(Debug, Clone)]
enum Step {
    /// Upload content `content` (0–2; equal contents are equal bytes) to a key.
    Put { key: usize, content: usize },
    /// Delete the key (a delete marker on a versioned bucket).
    Delete { key: usize },
    /// Permanently delete a noncurrent version (versioned), by a user or by lifecycle expiry;
    /// on an unversioned bucket, lifecycle expiry of the object.
    DeleteVersion {
        key: usize,
        nth: usize,
        lifecycle: bool,
    },
    /// `imgflow backfill` lists the key and sends a sequencer-less event for what it sees.
    Backfill { key: usize },
    /// Deliver a pending event `copies` times, failing the `crash`-th table write of the first
    /// delivery (a process dying between two writes); a failed delivery comes back later.
    Deliver {
        pick: usize,
        copies: u8,
        crash: Option<u8>,
    },
    /// The store stage writes labels for an image it was sent.
    Label { pick: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..KEYS.len(), 0..3usize).prop_map(|(key, content)| Step::Put { key, content }),
        2 => (0..KEYS.len()).prop_map(|key| Step::Delete { key }),
        1 => (0..KEYS.len(), 0..4usize, any::<bool>())
            .prop_map(|(key, nth, lifecycle)| Step::DeleteVersion { key, nth, lifecycle }),
        1 => (0..KEYS.len()).prop_map(|key| Step::Backfill { key }),
        6 => (0..16usize, 1..=3u8, prop::option::weighted(0.2, 0..3u8))
            .prop_map(|(pick, copies, crash)| Step::Deliver { pick, copies, crash }),
        1 => (0..8usize).prop_map(|pick| Step::Label { pick }),
    ]
}

/// One version of a key: `None` bytes for a delete marker.
#[derive(Debug, Clone)]
struct Version {
    id: Option<String>,
    bytes: Option<Bytes>,
}

/// S3 as the handler sees it: unversioned (one version per key, no id) or versioned.
#[derive(Debug, Default)]
struct ModelBucket {
    versioned: bool,
    keys: Mutex<HashMap<String, Vec<Version>>>,
    next_version: Mutex<u32>,
}

impl ModelBucket {
    fn find(&self, o: &ObjectLocation) -> Result<(Bytes, Option<String>), PortError> {
        let keys = self.keys.lock().unwrap();
        let versions = keys.get(&o.key).cloned().unwrap_or_default();
        let found = match &o.version_id {
            Some(v) => versions.iter().find(|x| x.id.as_deref() == Some(v)),
            None => versions.last(),
        };
        match found {
            Some(Version {
                id,
                bytes: Some(bytes),
            }) => Ok((bytes.clone(), id.clone())),
            _ => Err(PortError::new(PortErrorKind::NotFound, "s3", "NoSuchKey")),
        }
    }

    /// Writes a version (or a marker); its version id on a versioned bucket.
    fn write(&self, key: &str, bytes: Option<Bytes>) -> Option<String> {
        let id = self.versioned.then(|| {
            let mut n = self.next_version.lock().unwrap();
            *n += 1;
            format!("v{n}")
        });
        let mut keys = self.keys.lock().unwrap();
        let versions = keys.entry(key.to_owned()).or_default();
        if !self.versioned {
            versions.clear();
        }
        if self.versioned || bytes.is_some() {
            versions.push(Version {
                id: id.clone(),
                bytes,
            });
        }
        id
    }

    fn current(&self, key: &str) -> Option<(Bytes, Option<String>)> {
        self.find(&ObjectLocation {
            bucket: BUCKET.into(),
            key: key.into(),
            version_id: None,
        })
        .ok()
    }

    /// Removes the `nth` noncurrent version (wrapping), if any: its id.
    fn remove_noncurrent(&self, key: &str, nth: usize) -> Option<String> {
        let mut keys = self.keys.lock().unwrap();
        let versions = keys.get_mut(key)?;
        let current = versions.len().checked_sub(1);
        let candidates: Vec<usize> = (0..versions.len())
            .filter(|i| Some(*i) != current && versions[*i].bytes.is_some())
            .collect();
        let at = *candidates.get(nth % candidates.len().max(1))?;
        versions.remove(at).id
    }
}

impl ObjectStore for ModelBucket {
    async fn head(&self, object: &ObjectLocation) -> Result<ObjectHead, PortError> {
        let (bytes, version_id) = self.find(object)?;
        Ok(ObjectHead {
            size: bytes.len() as u64,
            etag: etag_of(&bytes),
            version_id,
        })
    }

    async fn get_start(
        &self,
        object: &ObjectLocation,
        last: u64,
    ) -> Result<(ObjectHead, Bytes), PortError> {
        let head = self.head(object).await?;
        Ok((head, self.get_range(object, 0, last).await?))
    }

    async fn get_range(
        &self,
        object: &ObjectLocation,
        first: u64,
        last: u64,
    ) -> Result<Bytes, PortError> {
        let (bytes, _) = self.find(object)?;
        let end = (last as usize + 1).min(bytes.len());
        Ok(bytes.slice((first as usize).min(end)..end))
    }

    async fn get(&self, object: &ObjectLocation) -> Result<Bytes, PortError> {
        Ok(self.find(object)?.0)
    }

    async fn put(
        &self,
        _bucket: &str,
        key: &str,
        body: Bytes,
        _content_type: &str,
    ) -> Result<PutResult, PortError> {
        let etag = etag_of(&body);
        let version_id = self.write(key, Some(body));
        Ok(PutResult { etag, version_id })
    }

    async fn delete(&self, _bucket: &str, key: &str) -> Result<(), PortError> {
        self.write(key, None);
        Ok(())
    }
}

/// A small valid PNG; `content` changes its dimensions, so its bytes and ETag.
fn png(content: usize) -> Bytes {
    let (width, height): (u32, u32) = (100 + content as u32, 80);
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    v.extend(std::iter::repeat_n(7u8, 600));
    v.extend_from_slice(b"\0\0\0\0IEND\xae\x42\x60\x82");
    Bytes::from(v)
}

/// What an event meant, for the in-order reference.
#[derive(Debug, Clone)]
enum Fact {
    Created(String),
    KeyRemoved,
    VersionRemoved(String),
}

fn event(name: &str, key: &str, object: serde_json::Value, sequencer: u32) -> String {
    let mut object = object;
    object["key"] = key.into();
    object["sequencer"] = format!("{sequencer:08X}").into();
    serde_json::json!({"Records": [{
        "eventName": name,
        "eventTime": "2026-12-07T10:00:00.000Z",
        "s3": {"bucket": {"name": BUCKET}, "object": object}
    }]})
    .to_string()
}

/// The expected catalog: each image's status class after in-order, exactly-once processing.
fn expected(facts: &[(usize, Fact)]) -> HashMap<String, ImageStatus> {
    let mut out = HashMap::new();
    let purged: BTreeSet<&String> = facts
        .iter()
        .filter_map(|(_, f)| match f {
            Fact::VersionRemoved(id) => Some(id),
            _ => None,
        })
        .collect();
    for key in 0..KEYS.len() {
        let timeline: Vec<&Fact> = facts
            .iter()
            .filter(|(k, f)| *k == key && !matches!(f, Fact::VersionRemoved(_)))
            .map(|(_, f)| f)
            .collect();
        let ids: BTreeSet<&String> = timeline
            .iter()
            .filter_map(|f| match f {
                Fact::Created(id) => Some(id),
                _ => None,
            })
            .collect();
        for id in ids {
            let latest = timeline
                .iter()
                .rposition(|f| matches!(f, Fact::Created(x) if x == id))
                .unwrap();
            let status = match timeline.get(latest + 1) {
                _ if purged.contains(id) => ImageStatus::Deleted,
                None => ImageStatus::Accepted,
                Some(Fact::Created(_)) => ImageStatus::Replaced,
                Some(_) => ImageStatus::Deleted,
            };
            out.insert(id.clone(), status);
        }
    }
    out
}

type Ingest = IngestHandler<ModelBucket, FakeTable, FakePublisher, FakeLabelIndex>;

struct World {
    bucket: Arc<ModelBucket>,
    table: Arc<FakeTable>,
    publisher: Arc<FakePublisher>,
    index: Arc<FakeLabelIndex>,
    handler: Ingest,
}

fn world(versioned: bool) -> World {
    let bucket = Arc::new(ModelBucket {
        versioned,
        ..Default::default()
    });
    let table = Arc::new(FakeTable::default());
    let publisher = Arc::new(FakePublisher::default());
    let index = Arc::new(FakeLabelIndex::default());
    let handler = IngestHandler::new(
        bucket.clone(),
        table.clone(),
        publisher.clone(),
        index.clone(),
        Limits::default(),
        "incoming/",
    );
    World {
        bucket,
        table,
        publisher,
        index,
        handler,
    }
}

/// Stores labels on an image the store stage was sent, and indexes them, as it does.
async fn label(w: &World, accepted: &ImageAccepted, at: u32) {
    let labeled = imgflow_messages::ImageLabeled {
        schema_version: imgflow_messages::SCHEMA_VERSION,
        image: accepted.image.clone(),
        labels: vec![imgflow_messages::Label {
            name: "Cat".into(),
            confidence: 90.0,
            instances: vec![],
            parents: vec![imgflow_messages::NamedRef::new("Animal")],
            categories: vec![],
        }],
        detector: "test".into(),
        label_model_version: "1".into(),
        labeled_at: format!("2026-12-07T10:00:{:02}.000000Z", at % 60),
    };
    if let LabelsWrite::Written { replaced, .. } =
        w.table.write_labels(&labeled, "now").await.unwrap()
    {
        let current = StoredLabels {
            labeled_at: labeled.labeled_at.clone(),
            labels: labeled.labels.clone(),
        };
        let id = &accepted.image.image_id;
        w.index
            .index_labels(id, &current, replaced.as_ref())
            .await
            .unwrap();
    }
}

async fn run(versioned: bool, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let w = world(versioned);
    let mut pending: Vec<String> = Vec::new();
    let mut facts: Vec<(usize, Fact)> = Vec::new();
    let mut sequencer = 0x100u32;
    let mut labelled = 0u32;
    let deliver = |body: String, crash: Option<u8>| {
        let w = &w;
        async move {
            if let Some(after) = crash {
                w.table
                    .fail_writes_after(after as usize, [PortErrorKind::Retryable]);
            }
            let result = w.handler.handle(&fakes::delivered(body)).await;
            w.table.clear_failures();
            result.is_ok()
        }
    };
    for step in steps {
        match step {
            Step::Put { key, content } => {
                sequencer += 1;
                let body = png(content);
                let etag = etag_of(&body);
                let version = w.bucket.write(KEYS[key], Some(body.clone()));
                let mut object = serde_json::json!({"eTag": etag, "size": body.len()});
                if let Some(v) = &version {
                    object["versionId"] = v.clone().into();
                }
                pending.push(event("ObjectCreated:Put", KEYS[key], object, sequencer));
                let id = image_id(BUCKET, KEYS[key], version.as_deref().unwrap_or(&etag));
                facts.push((key, Fact::Created(id)));
            }
            Step::Delete { key } => {
                sequencer += 1;
                let marker = w.bucket.write(KEYS[key], None);
                let (name, object) = match marker {
                    Some(v) => (
                        "ObjectRemoved:DeleteMarkerCreated",
                        serde_json::json!({"versionId": v}),
                    ),
                    None => ("ObjectRemoved:Delete", serde_json::json!({})),
                };
                pending.push(event(name, KEYS[key], object, sequencer));
                facts.push((key, Fact::KeyRemoved));
            }
            Step::DeleteVersion {
                key,
                nth,
                lifecycle,
            } => {
                let name = match lifecycle {
                    true => "LifecycleExpiration:Delete",
                    false => "ObjectRemoved:Delete",
                };
                if !versioned {
                    if lifecycle && w.bucket.current(KEYS[key]).is_some() {
                        sequencer += 1;
                        w.bucket.write(KEYS[key], None);
                        pending.push(event(name, KEYS[key], serde_json::json!({}), sequencer));
                        facts.push((key, Fact::KeyRemoved));
                    }
                    continue;
                }
                if let Some(version) = w.bucket.remove_noncurrent(KEYS[key], nth) {
                    sequencer += 1;
                    let object = serde_json::json!({"versionId": version});
                    pending.push(event(name, KEYS[key], object, sequencer));
                    let id = image_id(BUCKET, KEYS[key], &version);
                    facts.push((key, Fact::VersionRemoved(id)));
                }
            }
            Step::Backfill { key } => {
                if let Some((bytes, version)) = w.bucket.current(KEYS[key]) {
                    pending.push(created_notification(
                        BUCKET,
                        KEYS[key],
                        bytes.len() as u64,
                        &etag_of(&bytes),
                        version.as_deref(),
                        "2026-12-07T09:00:00.000Z",
                        "imgflow:backfill",
                    ));
                }
            }
            Step::Deliver {
                pick,
                copies,
                crash,
            } => {
                if pending.is_empty() {
                    continue;
                }
                let body = pending.remove(pick % pending.len());
                let mut delivered = deliver(body.clone(), crash).await;
                for _ in 1..copies {
                    delivered &= deliver(body.clone(), None).await;
                }
                if !delivered {
                    pending.push(body);
                }
            }
            Step::Label { pick } => {
                let sent = w.publisher.published();
                if !sent.is_empty() {
                    let accepted = ImageAccepted::decode(&sent[pick % sent.len()]).unwrap();
                    labelled += 1;
                    label(&w, &accepted, labelled).await;
                }
            }
        }
    }
    // The queue drains: every event still pending is delivered, once.
    for body in pending {
        prop_assert!(deliver(body, None).await, "a clean delivery succeeds");
    }

    let want = expected(&facts);
    let items = w.table.items();
    let announced: BTreeSet<String> = w
        .publisher
        .published()
        .iter()
        .map(|b| ImageAccepted::decode(b).unwrap().image.image_id)
        .collect();
    for (id, status) in &want {
        let item = items.get(id);
        prop_assert!(item.is_some(), "no item for {id} (expected {status})");
        let got = item.unwrap().status;
        match status {
            ImageStatus::Accepted => {
                prop_assert!(
                    matches!(got, ImageStatus::Accepted | ImageStatus::Labeled),
                    "{id}: the key's object is {got}, expected accepted or labeled"
                );
                prop_assert!(announced.contains(id), "{id} never sent to label");
            }
            _ => prop_assert_eq!(got, *status, "{}", id),
        }
    }
    for id in items.keys() {
        prop_assert!(
            want.contains_key(id),
            "an item for {id}, which no event created"
        );
    }
    for id in w.index.images_with_label("animal") {
        prop_assert!(
            !items[&id].status.is_gone(),
            "{id} is {} but still in the label index",
            items[&id].status
        );
    }
    prop_assert!(w.index.ledger().largest_item_bytes() < 4096);
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn unversioned_histories_end_as_in_order(steps in prop::collection::vec(step(), 1..40)) {
        runtime().block_on(run(false, steps))?;
    }

    #[test]
    fn versioned_histories_end_as_in_order(steps in prop::collection::vec(step(), 1..40)) {
        runtime().block_on(run(true, steps))?;
    }
}

/// A key overwritten 20,000 times (a camera writing one key every minute for two weeks): the
/// ledger stays one small item, every upload is accepted, and every earlier image is replaced.
#[tokio::test]
async fn a_key_overwritten_twenty_thousand_times_keeps_a_small_ledger() {
    let w = world(false);
    let key = KEYS[0];
    let mut ids = Vec::new();
    for n in 0..20_000u32 {
        let mut body = png(0).to_vec();
        body[30..34].copy_from_slice(&n.to_be_bytes());
        let body = Bytes::from(body);
        let etag = etag_of(&body);
        w.bucket.write(key, Some(body.clone()));
        let object = serde_json::json!({"eTag": etag, "size": body.len()});
        let message = event("ObjectCreated:Put", key, object, 0x1000 + n);
        w.handler.handle(&fakes::delivered(message)).await.unwrap();
        ids.push(image_id(BUCKET, key, &etag));
    }
    let items = w.table.items();
    let last = ids.pop().unwrap();
    assert_eq!(items[&last].status, ImageStatus::Accepted);
    assert!(ids
        .iter()
        .all(|id| items[id].status == ImageStatus::Replaced));
    let bytes = w.index.ledger().largest_item_bytes();
    println!("ledger item after 20,000 overwrites: {bytes} bytes");
    assert!(bytes < 4096, "{bytes} bytes");
}

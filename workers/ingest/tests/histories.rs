//! Model-based histories: generated S3 histories on two keys (puts, overwrites, deletions,
//! delete markers, permanent deletions of versions, lifecycle expiry, backfills), on an
//! unversioned and a versioned bucket, whose events are delivered one to three times each, in
//! any order, interleaved with the history itself, with crashes between ingest's writes, and
//! the label and store stages (and `imgflow relabel`) working through their queues meanwhile,
//! duplicates included. The real ingest, label and store handlers run over fakes that enforce
//! DynamoDB's conditions and item limit; after every history the catalog must be what
//! in-order, exactly-once processing of the same history gives: every image that is its key's
//! object labelled and in the label index, every other `replaced` or `deleted` and out of it,
//! no item for an image no event created, a small ledger, and no more detector calls than
//! uploads, relabels and backfill events. proptest shrinks a failure to its shortest history and prints it.
use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use imgflow_catalog::fakes::FakeLabelIndex;
use imgflow_imaging::probe::Limits;
use imgflow_ingest::IngestHandler;
use imgflow_label::{LabelHandler, LabelSettings};
use imgflow_messages::{created_notification, image_id, ImageAccepted, ImageStatus, StageMessage};
use imgflow_runtime::{
    consumer::Handler,
    fakes::{self, etag_of, FakeDetector, FakePublisher, FakeTable},
    ports::{ObjectHead, ObjectLocation, ObjectStore, PutResult},
    PortError, PortErrorKind,
};
use imgflow_store::StoreHandler;
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
    /// The label stage takes a message from its queue, `copies` times (duplicates are other
    /// SQS messages); what it publishes goes to the store stage's queue.
    Label { pick: usize, copies: u8 },
    /// The store stage takes a message from its queue.
    Store { pick: usize },
    /// `imgflow relabel` sends an image that has labels back to the label stage.
    Relabel { pick: usize },
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
        3 => (0..8usize, 1..=2u8).prop_map(|(pick, copies)| Step::Label { pick, copies }),
        3 => (0..8usize).prop_map(|pick| Step::Store { pick }),
        1 => (0..8usize).prop_map(|pick| Step::Relabel { pick }),
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
            checksum: None,
            etag_is_md5: true,
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
type Labeler = LabelHandler<FakeDetector, FakeTable, FakePublisher>;
type Storer = StoreHandler<FakeTable, FakeLabelIndex, FakePublisher, FakePublisher>;

struct World {
    bucket: Arc<ModelBucket>,
    table: Arc<FakeTable>,
    publisher: Arc<FakePublisher>,
    index: Arc<FakeLabelIndex>,
    handler: Ingest,
    detector: Arc<FakeDetector>,
    labeled: Arc<FakePublisher>,
    label: Labeler,
    store: Storer,
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
    let detector = Arc::new(FakeDetector::new(vec![cat()]));
    let labeled = Arc::new(FakePublisher::default());
    let label = LabelHandler::new(
        detector.clone(),
        table.clone(),
        labeled.clone(),
        LabelSettings::default(),
    );
    let store = StoreHandler::new(
        table.clone(),
        index.clone(),
        Arc::new(FakePublisher::default()),
        Arc::new(FakePublisher::default()),
    );
    World {
        bucket,
        table,
        publisher,
        index,
        handler,
        detector,
        labeled,
        label,
        store,
    }
}

fn cat() -> imgflow_messages::Label {
    imgflow_messages::Label {
        name: "Cat".into(),
        confidence: 90.0,
        instances: vec![],
        parents: vec![imgflow_messages::NamedRef::new("Animal")],
        categories: vec![],
    }
}

/// The stages' queues between ingest and the store: bodies waiting, and how many of each
/// publisher's messages were already queued.
#[derive(Default)]
struct Queues {
    label: Vec<String>,
    store: Vec<String>,
    accepted_seen: usize,
    labeled_seen: usize,
    next_id: u32,
}

impl Queues {
    /// Moves what ingest and the label stage published since last time into the queues.
    fn collect(&mut self, w: &World) {
        let accepted = w.publisher.published();
        self.label
            .extend(accepted[self.accepted_seen..].iter().cloned());
        self.accepted_seen = accepted.len();
        let labeled = w.labeled.published();
        self.store
            .extend(labeled[self.labeled_seen..].iter().cloned());
        self.labeled_seen = labeled.len();
    }

    fn message(&mut self, body: &str) -> imgflow_runtime::ports::ReceivedMessage {
        self.next_id += 1;
        fakes::delivered_as(body, &format!("m{}", self.next_id))
    }
}

/// The label stage handles one message from its queue, `copies` times; a refusal to retry
/// (a duplicate meeting a live claim) puts it back.
async fn label_one(w: &World, q: &mut Queues, pick: usize, copies: u8) {
    if q.label.is_empty() {
        return;
    }
    let body = q.label.remove(pick % q.label.len());
    let mut done = true;
    for _ in 0..copies {
        let message = q.message(&body);
        done &= w.label.handle(&message).await.is_ok();
    }
    if !done {
        q.label.push(body);
    }
    q.collect(w);
}

async fn store_one(w: &World, q: &mut Queues, pick: usize) {
    if q.store.is_empty() {
        return;
    }
    let body = q.store.remove(pick % q.store.len());
    let message = q.message(&body);
    if w.store.handle(&message).await.is_err() {
        q.store.push(body);
    }
}

async fn run(versioned: bool, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let w = world(versioned);
    let mut pending: Vec<String> = Vec::new();
    let mut facts: Vec<(usize, Fact)> = Vec::new();
    let mut sequencer = 0x100u32;
    let mut queues = Queues::default();
    let mut relabels = 0usize;
    let mut backfills = 0usize;
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
                    backfills += 1;
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
            Step::Label { pick, copies } => label_one(&w, &mut queues, pick, copies).await,
            Step::Store { pick } => store_one(&w, &mut queues, pick).await,
            Step::Relabel { pick } => {
                let mut labelled: Vec<_> = w
                    .table
                    .items()
                    .into_values()
                    .filter(|r| r.status == ImageStatus::Labeled)
                    .collect();
                labelled.sort_by(|a, b| a.id.cmp(&b.id));
                if !labelled.is_empty() {
                    let record = &labelled[pick % labelled.len()];
                    relabels += 1;
                    let accepted = ImageAccepted {
                        schema_version: imgflow_messages::SCHEMA_VERSION,
                        image: imgflow_messages::ImageRef {
                            image_id: record.id.clone(),
                            trace_id: "relabel".into(),
                            bucket: record.bucket.clone(),
                            key: record.key.clone(),
                            version_id: record.version_id.clone(),
                            etag: record.etag.clone(),
                            received_at: record.received_at.clone(),
                        },
                        content_type: "image/png".into(),
                        size: 1,
                        width: 100,
                        height: 80,
                        accepted_at: record.received_at.clone(),
                        relabel: Some(format!("g{relabels}")),
                        content_md5: None,
                    };
                    queues.label.push(accepted.encode());
                }
            }
        }
        queues.collect(&w);
    }
    // The queues drain: every event still pending is delivered, once, and the stages work
    // until nothing is left (a duplicate held off by a live claim is retried after the store
    // stage has written).
    for body in pending {
        prop_assert!(deliver(body, None).await, "a clean delivery succeeds");
    }
    queues.collect(&w);
    for _ in 0..50 {
        if queues.label.is_empty() && queues.store.is_empty() {
            break;
        }
        while !queues.store.is_empty() {
            store_one(&w, &mut queues, 0).await;
        }
        let waiting = queues.label.len();
        for _ in 0..waiting {
            label_one(&w, &mut queues, 0, 1).await;
        }
    }
    prop_assert!(
        queues.label.is_empty() && queues.store.is_empty(),
        "the queues drain"
    );

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
                prop_assert_eq!(got, ImageStatus::Labeled, "{}: the key's object", id);
                prop_assert!(announced.contains(id), "{id} never sent to label");
                prop_assert!(
                    w.index.images_with_label("animal").contains(id),
                    "{id} is labelled but not in the label index"
                );
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
    // A backfill's event can reach ingest before the real events of its key: the object is
    // labelled, then ended by a real event placed after it, then brought back by its own real
    // event and labelled again. So each backfill event may cost one call more.
    let uploads = facts
        .iter()
        .filter(|(_, f)| matches!(f, Fact::Created(_)))
        .count();
    prop_assert!(
        w.detector.calls() <= uploads + relabels + backfills,
        "{} detector calls for {} uploads, {} relabels and {} backfill events",
        w.detector.calls(),
        uploads,
        relabels,
        backfills
    );
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

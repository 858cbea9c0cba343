//! A load simulation on the fakes: the real ingest, label and store handlers take a burst of
//! images, and every write they make is charged to the DynamoDB partition key it lands on, as
//! DynamoDB maintains the keys-only indexes (a key attribute that changes is one delete in its
//! old partition and one put in its new). DynamoDB serves about 1,000 writes per second per
//! partition key, so the busiest partition per image says how many images per second the
//! pipeline sustains before the indexes throttle it. No emulator, no clock: it counts.
use std::{collections::BTreeMap, sync::Arc};

use imgflow_catalog::{
    fakes::FakeLabelIndex,
    keys::{GalleryKeys, INDEX_SHARDS},
};
use imgflow_imaging::probe::Limits;
use imgflow_ingest::IngestHandler;
use imgflow_label::LabelHandler;
use imgflow_messages::{ImageRecord, Label, NamedRef};
use imgflow_runtime::{
    consumer::Handler,
    fakes::{self, FakeDetector, FakeObjectStore, FakePublisher, FakeTable},
};
use imgflow_store::StoreHandler;

const BUCKET: &str = "imgflow-images";
/// Images in the burst; the busiest partition's share of it is what matters.
const IMAGES: u64 = 4000;
/// DynamoDB's sustained writes per second to one partition key (1 KB items, which index
/// entries are); the table's own partitions are keyed by image id and never the limit.
const PARTITION_WRITES_PER_S: u64 = 1000;

/// A PNG header with an end: ingest reads no pixels.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    v.extend(std::iter::repeat_n(7u8, 200));
    v.extend_from_slice(b"\0\0\0\0IEND\xae\x42\x60\x82");
    v
}

fn created(key: &str, etag: &str) -> String {
    serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-28T09:00:00.000Z",
        "s3": {"bucket": {"name": BUCKET},
               "object": {"key": key, "eTag": etag, "size": 227}}
    }]})
    .to_string()
}

/// Charges the index writes that turn `before` into `after` to their partitions.
fn charge_gallery(
    writes: &mut BTreeMap<String, u64>,
    before: &std::collections::HashMap<String, ImageRecord>,
    after: &std::collections::HashMap<String, ImageRecord>,
) {
    for (id, record) in after {
        let old = before.get(id).and_then(GalleryKeys::of);
        let new = GalleryKeys::of(record);
        let pick: [fn(&GalleryKeys) -> String; 2] = [
            |k| format!("by_day {}", k.day),
            |k| format!("by_status {}", k.status_day),
        ];
        for partition in pick {
            let (old, new) = (old.as_ref().map(partition), new.as_ref().map(partition));
            if old != new {
                for key in [old, new].into_iter().flatten() {
                    *writes.entry(key).or_default() += 1;
                }
            }
        }
    }
}

/// The same writes as if nothing were sharded: the shard suffix or infix dropped.
fn unsharded(writes: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut merged = BTreeMap::new();
    for (key, n) in writes {
        let key = match key.strip_prefix("label.") {
            Some(rest) => format!("label#{}", rest.split_once('#').unwrap().1),
            None => key.rsplit_once('#').unwrap().0.to_owned(),
        };
        *merged.entry(key).or_default() += n;
    }
    merged
}

/// Images per second before the busiest partition reaches DynamoDB's limit.
fn sustained(writes: &BTreeMap<String, u64>) -> (u64, String) {
    let (key, busiest) = writes.iter().max_by_key(|(_, n)| **n).unwrap();
    (PARTITION_WRITES_PER_S * IMAGES / busiest, key.clone())
}

#[tokio::test]
async fn sharded_indexes_sustain_thousands_of_images_per_second_where_one_partition_held_500() {
    let objects = Arc::new(FakeObjectStore::default());
    let table = Arc::new(FakeTable::default());
    let index = Arc::new(FakeLabelIndex::default());
    let (accepted, labeled) = (
        Arc::new(FakePublisher::default()),
        Arc::new(FakePublisher::default()),
    );
    let ingest = IngestHandler::new(
        objects.clone(),
        table.clone(),
        accepted.clone(),
        index.clone(),
        Limits::default(),
        "incoming/",
    );
    // Every image gets the same label and parent: the worst case for the label index.
    let person = Label {
        name: "Person".into(),
        confidence: 99.0,
        instances: vec![],
        parents: vec![NamedRef::new("Human")],
        categories: vec![],
    };
    let label = LabelHandler::new(
        Arc::new(FakeDetector::new(vec![person])),
        table.clone(),
        labeled.clone(),
        Default::default(),
    );
    let store = StoreHandler::new(
        table.clone(),
        index.clone(),
        Arc::new(FakePublisher::default()),
        Arc::new(FakePublisher::default()),
    );

    let mut gallery = BTreeMap::new();
    let mut before = table.items();
    for i in 0..IMAGES {
        let key = format!("incoming/{i}.png");
        let etag = objects.insert(BUCKET, &key, png(640, 480));
        ingest
            .handle(&fakes::delivered(created(&key, &etag)))
            .await
            .unwrap();
    }
    charge_gallery(&mut gallery, &before, &table.items());
    before = table.items();
    for body in accepted.published() {
        label.handle(&fakes::delivered(body)).await.unwrap();
    }
    charge_gallery(&mut gallery, &before, &table.items());
    before = table.items();
    for body in labeled.published() {
        store.handle(&fakes::delivered(body)).await.unwrap();
    }
    charge_gallery(&mut gallery, &before, &table.items());
    let labels = index.writes_by_partition();
    assert_eq!(table.items().len() as u64, IMAGES);
    assert_eq!(
        labels.values().sum::<u64>(),
        2 * IMAGES,
        "one entry per image for the label and one for its parent"
    );
    assert_eq!(
        gallery.values().sum::<u64>(),
        4 * IMAGES,
        "by_day once; by_status into accepted, out of it, into labeled"
    );

    let of_index = |index: &str| -> BTreeMap<String, u64> {
        gallery
            .iter()
            .filter(|(k, _)| k.starts_with(index))
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    };
    let report = [
        ("by_day", of_index("by_day ")),
        ("by_status", of_index("by_status ")),
        ("label index", labels.clone()),
    ];
    for (name, writes) in &report {
        let (sharded, busiest) = sustained(writes);
        let (single, hot) = sustained(&unsharded(writes));
        println!(
            "{name}: {sharded} images/s sustained over {INDEX_SHARDS} shards \
             (busiest {busiest}); {single} images/s unsharded (busiest {hot})"
        );
    }
    let (gallery_rate, _) = sustained(&gallery);
    let (label_rate, _) = sustained(&labels);
    // An accepted image's status partition takes two writes (in, then out), so one partition
    // per status and day holds the pipeline to 500 images/s; eight hold it to about 4,000,
    // less the unevenness of the hash over a burst.
    assert_eq!(sustained(&unsharded(&gallery)).0, 500);
    assert!(gallery_rate >= 3_600, "gallery: {gallery_rate} images/s");
    assert_eq!(sustained(&unsharded(&labels)).0, 1000);
    assert!(label_rate >= 7_200, "labels: {label_rate} images/s");
}

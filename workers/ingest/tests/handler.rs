//! Ingest's decisions against in-memory ports.
use std::sync::Arc;

use imgflow_catalog::{fakes::FakeLabelIndex, ports::LabelIndex};
use imgflow_imaging::probe::Limits;
use imgflow_ingest::IngestHandler;
use imgflow_messages::{ImageAccepted, ImageStatus, StageMessage};
use imgflow_runtime::{
    consumer::{Batch, Consumer, ConsumerConfig, Disposition, Handler},
    fakes::{self, FakeObjectStore, FakePublisher, FakeQueue, FakeTable},
    ports::{ImageTable, LabelsWrite, ReceivedMessage, StoredLabels},
};

const BUCKET: &str = "imgflow-images";

struct Fixture {
    store: Arc<FakeObjectStore>,
    table: Arc<FakeTable>,
    publisher: Arc<FakePublisher>,
    index: Arc<FakeLabelIndex>,
    handler: IngestHandler<FakeObjectStore, FakeTable, FakePublisher, FakeLabelIndex>,
}

fn fixture() -> Fixture {
    let store = Arc::new(FakeObjectStore::default());
    let table = Arc::new(FakeTable::default());
    let publisher = Arc::new(FakePublisher::default());
    let index = Arc::new(FakeLabelIndex::default());
    let handler = IngestHandler::new(
        store.clone(),
        table.clone(),
        publisher.clone(),
        index.clone(),
        Limits::default(),
        "incoming/",
    );
    Fixture {
        store,
        table,
        publisher,
        index,
        handler,
    }
}

/// A PNG whose header and end are real; the pixel data is irrelevant to ingest.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    v.extend(std::iter::repeat_n(7u8, 5000));
    v.extend_from_slice(b"\0\0\0\0IEND\xae\x42\x60\x82");
    v
}

/// A JPEG with `metadata` bytes of APP segments before its frame header.
fn jpeg(width: u16, height: u16, metadata: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    let mut left = metadata;
    while left > 0 {
        let len = left.min(60_000);
        v.extend_from_slice(&[0xFF, 0xE1]);
        v.extend_from_slice(&((len + 2) as u16).to_be_bytes());
        v.extend(std::iter::repeat_n(0u8, len));
        left -= len;
    }
    v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02]);
    v.extend(std::iter::repeat_n(0x55u8, 3000));
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// `jpeg(…)` with an APP1 Exif segment holding `tiff`.
fn jpeg_with_exif(tiff: &[u8]) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
    v.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    v.extend_from_slice(b"Exif\0\0");
    v.extend_from_slice(tiff);
    v.extend_from_slice(&jpeg(640, 480, 0)[2..]);
    v
}

/// A phone's EXIF: make, and a position.
fn phone_exif() -> Vec<u8> {
    use exif::{experimental::Writer, Field, In, Tag, Value};
    let field = |tag, value| Field {
        tag,
        ifd_num: In::PRIMARY,
        value,
    };
    let fields = [
        field(Tag::Make, Value::Ascii(vec![b"Google".to_vec()])),
        field(Tag::GPSLatitudeRef, Value::Ascii(vec![b"S".to_vec()])),
        field(
            Tag::GPSLatitude,
            Value::Rational(vec![(33, 1).into(), (52, 1).into(), (0, 1).into()]),
        ),
    ];
    let mut writer = Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    writer.write(&mut out, false).unwrap();
    out.into_inner()
}

/// An S3 event of `name` with a sequencer, as S3 sends deletions (no ETag or size).
fn sequenced(name: &str, key: &str, etag: Option<&str>, sequencer: &str) -> ReceivedMessage {
    let mut object = serde_json::json!({"key": key, "sequencer": sequencer});
    if let Some(etag) = etag {
        object["eTag"] = etag.into();
        object["size"] = 1.into();
    }
    let body = serde_json::json!({"Records": [{
        "eventName": name,
        "eventTime": "2026-11-27T03:40:11.532Z",
        "s3": {"bucket": {"name": BUCKET}, "object": object}
    }]});
    message(body.to_string())
}

/// Stores labels on `id` and indexes them, as the store stage does.
async fn label(f: &Fixture, id: &str) {
    let record = f.table.items()[id].clone();
    let labeled = imgflow_messages::ImageLabeled {
        schema_version: imgflow_messages::SCHEMA_VERSION,
        image: imgflow_messages::ImageRef {
            image_id: id.into(),
            trace_id: "t".into(),
            bucket: record.bucket,
            key: record.key,
            version_id: None,
            etag: record.etag,
            received_at: record.received_at,
        },
        labels: vec![imgflow_messages::Label {
            name: "Cat".into(),
            confidence: 90.0,
            instances: vec![],
            parents: vec![imgflow_messages::NamedRef::new("Animal")],
            categories: vec![],
        }],
        detector: "test".into(),
        label_model_version: "1".into(),
        labeled_at: "2026-11-27T03:40:12.000000Z".into(),
        duplicate_of: None,
    };
    let LabelsWrite::Written { replaced, .. } =
        f.table.write_labels(&labeled, "now").await.unwrap()
    else {
        panic!("labels written")
    };
    let current = StoredLabels {
        labeled_at: labeled.labeled_at.clone(),
        labels: labeled.labels.clone(),
    };
    f.index
        .index_labels(id, &current, replaced.as_ref())
        .await
        .unwrap();
}

fn only_item(f: &Fixture) -> imgflow_messages::ImageRecord {
    let items = f.table.items();
    assert_eq!(items.len(), 1, "{items:?}");
    items.into_values().next().unwrap()
}

#[tokio::test]
async fn a_deletion_marks_the_image_deleted_and_drops_its_label_entries() {
    let f = fixture();
    let etag = f.store.insert(BUCKET, "incoming/cat.png", png(451, 300));
    f.handler
        .handle(&sequenced(
            "ObjectCreated:Put",
            "incoming/cat.png",
            Some(&etag),
            "0A",
        ))
        .await
        .unwrap();
    let id = only_item(&f).id;
    label(&f, &id).await;
    assert_eq!(f.index.images_with_label("animal"), vec![id.clone()]);

    let delete = sequenced("ObjectRemoved:Delete", "incoming/cat.png", None, "0B");
    f.handler.handle(&delete).await.unwrap();
    f.handler.handle(&delete).await.unwrap();
    let record = only_item(&f);
    assert_eq!(record.status, ImageStatus::Deleted);
    assert!(record.deleted_at.is_some());
    assert!(f.index.is_empty(), "label entries dropped");
}

#[tokio::test]
async fn a_deletion_that_arrives_before_its_creation_still_ends_deleted() {
    let f = fixture();
    let etag = f.store.insert(BUCKET, "incoming/cat.png", png(451, 300));
    f.handler
        .handle(&sequenced(
            "ObjectRemoved:Delete",
            "incoming/cat.png",
            None,
            "0055AED6DCD90281E6",
        ))
        .await
        .unwrap();
    assert!(f.table.items().is_empty());
    // The creation (earlier in S3's order: a shorter sequencer compares right-padded).
    f.handler
        .handle(&sequenced(
            "ObjectCreated:Put",
            "incoming/cat.png",
            Some(&etag),
            "0055AED6DCD90281E5",
        ))
        .await
        .unwrap();
    assert_eq!(only_item(&f).status, ImageStatus::Deleted);
    assert!(f.publisher.published().is_empty(), "nothing sent to label");
}

#[tokio::test]
async fn a_stale_deletion_leaves_a_later_upload_alone_and_a_reupload_is_processed_anew() {
    let f = fixture();
    let etag = f.store.insert(BUCKET, "incoming/cat.png", png(451, 300));
    let create = |seq| sequenced("ObjectCreated:Put", "incoming/cat.png", Some(&etag), seq);
    f.handler.handle(&create("0A")).await.unwrap();
    f.handler
        .handle(&sequenced(
            "ObjectRemoved:Delete",
            "incoming/cat.png",
            None,
            "0B",
        ))
        .await
        .unwrap();
    assert_eq!(only_item(&f).status, ImageStatus::Deleted);

    // The same bytes uploaded again: the same id, labelled anew.
    f.handler.handle(&create("0C")).await.unwrap();
    let record = only_item(&f);
    assert_eq!(record.status, ImageStatus::Accepted);
    assert_eq!(record.deleted_at, None);
    assert_eq!(f.publisher.published().len(), 2);

    // A deletion older than that upload arrives late: ignored.
    f.handler
        .handle(&sequenced(
            "ObjectRemoved:Delete",
            "incoming/cat.png",
            None,
            "0BFF",
        ))
        .await
        .unwrap();
    assert_eq!(only_item(&f).status, ImageStatus::Accepted);
}

#[tokio::test]
async fn a_deletion_without_sequencer_or_under_another_prefix() {
    let f = fixture();
    let record = upload_and_ingest(&f, "incoming/cat.png", png(451, 300)).await;
    let body = serde_json::json!({"Records": [{
        "eventName": "ObjectRemoved:Delete",
        "eventTime": "2026-11-27T03:40:13.000Z",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": "elsewhere/cat.png"}}
    }]});
    f.handler.handle(&message(body.to_string())).await.unwrap();
    assert_eq!(
        only_item(&f).status,
        ImageStatus::Accepted,
        "outside the prefix"
    );
    let body = body.to_string().replace("elsewhere/", "incoming/");
    f.handler.handle(&message(body)).await.unwrap();
    assert_eq!(f.table.items()[&record.id].status, ImageStatus::Deleted);
}

/// An S3 notification as S3 sends it: keys form-URL-encoded.
fn event(key: &str, etag: &str) -> ReceivedMessage {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-27T03:40:11.532Z",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": encoded, "size": 1, "eTag": etag}}
    }]});
    message(body.to_string())
}

fn message(body: String) -> ReceivedMessage {
    fakes::delivered(body)
}

async fn upload_and_ingest(f: &Fixture, key: &str, body: Vec<u8>) -> imgflow_messages::ImageRecord {
    let etag = f.store.insert(BUCKET, key, body);
    f.handler.handle(&event(key, &etag)).await.unwrap();
    let items = f.table.items();
    items
        .values()
        .find(|r| r.key == key)
        .cloned()
        .unwrap_or_else(|| panic!("no item for {key}: {items:?}"))
}

#[tokio::test]
async fn exif_is_kept_without_gps_unless_asked_and_bad_exif_costs_nothing() {
    let f = fixture();
    let record = upload_and_ingest(&f, "incoming/phone.jpg", jpeg_with_exif(&phone_exif())).await;
    assert_eq!(record.status, ImageStatus::Accepted);
    let exif = record.exif.expect("exif recorded");
    assert_eq!(exif.get("camera_make").map(String::as_str), Some("Google"));
    assert!(!exif.contains_key("gps_latitude"), "GPS dropped by default");

    let mut f = fixture();
    f.handler = f.handler.keep_gps(true);
    let record = upload_and_ingest(&f, "incoming/phone.jpg", jpeg_with_exif(&phone_exif())).await;
    assert_eq!(record.exif.unwrap()["gps_latitude"], "-33.866667");

    let f = fixture();
    let garbage = b"MM\x00\x2a\x7f\xff\xff\xff\x00\x01".to_vec();
    let record = upload_and_ingest(&f, "incoming/odd.jpg", jpeg_with_exif(&garbage)).await;
    assert_eq!(record.status, ImageStatus::Accepted, "{:?}", record.reason);
    assert_eq!(record.exif, None);
    assert_eq!(f.publisher.published().len(), 1);

    let record = upload_and_ingest(&f, "incoming/plain.png", png(451, 300)).await;
    assert_eq!(record.exif, None, "no EXIF, no attribute");
}

#[tokio::test]
async fn a_png_is_accepted_and_announced() {
    let f = fixture();
    let record = upload_and_ingest(
        &f,
        "incoming/holiday 2024/café + friends.png",
        png(451, 300),
    )
    .await;
    assert_eq!(record.status, ImageStatus::Accepted);
    assert_eq!((record.width, record.height), (Some(451), Some(300)));
    assert_eq!(record.content_type.as_deref(), Some("image/png"));
    assert_eq!(record.received_at, "2026-11-27T03:40:11.532000Z");

    let published = f.publisher.published();
    assert_eq!(published.len(), 1);
    let accepted = ImageAccepted::decode(&published[0]).unwrap();
    assert_eq!(accepted.image.image_id, record.id);
    assert_eq!(
        accepted.image.key,
        "incoming/holiday 2024/café + friends.png"
    );
    assert_eq!(accepted.image.trace_id, record.trace_id.unwrap());
}

#[tokio::test]
async fn bad_files_are_rejected_with_reasons_and_not_announced() {
    let f = fixture();
    let mut truncated = jpeg(640, 480, 100);
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "incoming/notes.png",
            b"just some text, not a picture\n".to_vec(),
            "text",
        ),
        ("incoming/empty.png", Vec::new(), "empty"),
        ("incoming/cut.jpg", truncated, "truncated"),
        ("incoming/strip.png", png(12_000, 50), "12000×50"),
        ("incoming/anim.gif", b"GIF89a\x10\0\x10\0".to_vec(), "GIF"),
    ];
    for (key, body, expected) in cases {
        let record = upload_and_ingest(&f, key, body).await;
        assert_eq!(record.status, ImageStatus::Rejected, "{key}");
        let reason = record.reason.unwrap_or_default();
        assert!(
            reason.contains(expected),
            "{key}: reason {reason:?} should mention {expected:?}"
        );
    }
    assert!(f.publisher.published().is_empty());
}

#[tokio::test]
async fn a_jpeg_header_behind_large_metadata_is_found_with_few_small_reads() {
    let f = fixture();
    let record = upload_and_ingest(&f, "incoming/camera.jpg", jpeg(4032, 3024, 150_000)).await;
    assert_eq!(record.status, ImageStatus::Accepted);
    assert_eq!((record.width, record.height), (Some(4032), Some(3024)));
    // 64 KiB, then 128 KiB, then 256 KiB of header, then the tail.
    assert!(
        f.store.range_reads() <= 4,
        "{} reads",
        f.store.range_reads()
    );
}

#[tokio::test]
async fn an_object_deleted_before_ingest_is_missing() {
    let f = fixture();
    let etag = f.store.insert(BUCKET, "incoming/gone.png", png(100, 100));
    f.store.remove(BUCKET, "incoming/gone.png");
    f.handler
        .handle(&event("incoming/gone.png", &etag))
        .await
        .unwrap();
    let record = f.table.items().into_values().next().unwrap();
    assert_eq!(record.status, ImageStatus::Missing);
    assert!(record.reason.unwrap().contains("deleted"));
    assert!(f.publisher.published().is_empty());
}

#[tokio::test]
async fn an_object_replaced_after_its_event_is_left_to_the_newer_event() {
    let f = fixture();
    let old_etag = f.store.insert(BUCKET, "incoming/x.png", png(100, 100));
    f.store.insert(BUCKET, "incoming/x.png", png(200, 200));
    f.handler
        .handle(&event("incoming/x.png", &old_etag))
        .await
        .unwrap();
    let record = f.table.items().into_values().next().unwrap();
    assert_eq!(record.status, ImageStatus::Missing);
    assert!(record.reason.unwrap().contains("replaced"));
}

#[tokio::test]
async fn a_duplicate_event_maps_to_the_same_item_and_never_undoes_labels() {
    let f = fixture();
    let etag = f.store.insert(BUCKET, "incoming/dup.png", png(100, 100));
    f.handler
        .handle(&event("incoming/dup.png", &etag))
        .await
        .unwrap();
    f.handler
        .handle(&event("incoming/dup.png", &etag))
        .await
        .unwrap();
    let items = f.table.items();
    assert_eq!(items.len(), 1);
    let id = items.keys().next().unwrap().clone();

    // Once labeled, a late duplicate changes nothing and announces nothing.
    let accepted = ImageAccepted::decode(&f.publisher.published()[0]).unwrap();
    let labeled = imgflow_messages::ImageLabeled {
        schema_version: 1,
        image: accepted.image,
        labels: vec![],
        detector: "fake".into(),
        label_model_version: "1".into(),
        labeled_at: "2026-11-27T03:40:12.000000Z".into(),
        duplicate_of: None,
    };
    f.table
        .write_labels(&labeled, "2026-11-27T05:00:00.000000Z")
        .await
        .unwrap();
    f.handler
        .handle(&event("incoming/dup.png", &etag))
        .await
        .unwrap();
    assert_eq!(f.table.items()[&id].status, ImageStatus::Labeled);
    assert_eq!(
        f.publisher.published().len(),
        2,
        "the late duplicate published nothing"
    );
}

#[tokio::test]
async fn test_events_and_other_prefixes_and_removals_write_nothing() {
    let f = fixture();
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2014-10-13T15:57:02.089Z","Bucket":"b"}"#;
    f.handler.handle(&message(test_event.into())).await.unwrap();
    let etag = f.store.insert(BUCKET, "elsewhere/a.png", png(100, 100));
    f.handler
        .handle(&event("elsewhere/a.png", &etag))
        .await
        .unwrap();
    let removal = event("incoming/a.png", "e")
        .body
        .replace("ObjectCreated:Put", "ObjectRemoved:Delete");
    f.handler.handle(&message(removal)).await.unwrap();
    assert!(f.table.items().is_empty());
    assert!(f.publisher.published().is_empty());
}

#[tokio::test]
async fn a_malformed_body_is_dead_lettered_and_the_rest_of_the_batch_flows() {
    let f = fixture();
    let queue = Arc::new(FakeQueue::new());
    let etag = f.store.insert(BUCKET, "incoming/ok.png", png(100, 100));
    queue.send("{not json");
    queue.send(event("incoming/ok.png", &etag).body);
    queue.send(r#"{"Records": [{"eventName": 5}]}"#);

    let handler = Arc::new(f.handler);
    let err = handler
        .handle(&message("{not json".into()))
        .await
        .unwrap_err();
    assert_eq!(err.disposition, Disposition::DeadLetter);

    let consumer = Consumer::new(queue.clone(), handler, ConsumerConfig::new("ingest"));
    let Batch::Processed(report) = consumer.process_batch().await.unwrap() else {
        panic!("empty")
    };
    assert_eq!((report.succeeded, report.dead_lettered), (1, 2));
    assert_eq!(consumer.process_batch().await.unwrap(), Batch::Empty);
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 2);
    assert!(dead
        .iter()
        .all(|(_, why)| why.error_class == "malformed_event" && why.stage == "ingest"));
    assert!(
        dead[0].1.error.contains("not an S3 event notification"),
        "{}",
        dead[0].1.error
    );
    assert_eq!(f.table.items().len(), 1);
}

/// What a HEAD answered comes with the first ranged read: an image within the first 64 KiB
/// costs that one read (its end is in it), a larger one a second, small read of its end.
#[tokio::test]
async fn an_image_costs_one_or_two_small_reads_and_no_head() {
    let f = fixture();
    let record = upload_and_ingest(&f, "incoming/two-reads.png", png(451, 300)).await;
    assert_eq!(record.status, ImageStatus::Accepted);
    assert_eq!(record.size, Some(png(451, 300).len() as u64));
    assert_eq!(f.store.range_reads(), 1);
    let mut large = png(451, 300);
    large.splice(40..40, std::iter::repeat_n(7u8, 100_000));
    upload_and_ingest(&f, "incoming/large.png", large).await;
    assert_eq!(f.store.range_reads(), 3);
}

/// Another worker recorded a newer decision for the image (its key's object again): an older
/// deletion's decision changes nothing, and leaves its thumbnail and label entries alone.
#[tokio::test]
async fn an_older_decision_leaves_a_live_images_thumbnail_and_labels_alone() {
    use imgflow_runtime::ports::{ObjectLocation, ObjectStore};
    let f = fixture();
    let etag = f.store.insert(BUCKET, "incoming/cat.png", png(451, 300));
    f.handler
        .handle(&sequenced(
            "ObjectCreated:Put",
            "incoming/cat.png",
            Some(&etag),
            "0A",
        ))
        .await
        .unwrap();
    let id = only_item(&f).id;
    label(&f, &id).await;
    let thumbnail = imgflow_messages::thumbnail_key(&id);
    f.store.insert(BUCKET, &thumbnail, vec![0xFF, 0xD8]);
    f.table.live(&id, 100).await.unwrap();
    f.handler
        .handle(&sequenced(
            "ObjectRemoved:Delete",
            "incoming/cat.png",
            None,
            "0B",
        ))
        .await
        .unwrap();
    assert_eq!(only_item(&f).status, ImageStatus::Labeled);
    let location = ObjectLocation {
        bucket: BUCKET.into(),
        key: thumbnail,
        version_id: None,
    };
    assert!(f.store.get(&location).await.is_ok(), "thumbnail kept");
    assert_eq!(f.index.images_with_label("animal"), vec![id]);
}

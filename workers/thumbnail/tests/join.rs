//! The thumbnail stage and the join with the label branch, on in-memory ports: every order
//! of the two branches ends with exactly one `ImageCompleted`.
use std::sync::Arc;

use bytes::Bytes;
use image::{DynamicImage, RgbImage};
use imgflow_catalog::fakes::FakeLabelIndex;
use imgflow_messages::{
    thumbnail_key, ImageAccepted, ImageCompleted, ImageLabeled, ImageRecord, ImageRef, ImageStatus,
    Label, StageMessage, SCHEMA_VERSION,
};
use imgflow_runtime::{
    consumer::{Disposition, Handler},
    fakes::{self, FakeObjectStore, FakePublisher, FakeTable},
    ports::{ImageTable, ObjectLocation, ObjectStore},
    PortErrorKind,
};
use imgflow_store::StoreHandler;
use imgflow_thumbnail::{ThumbnailHandler, ThumbnailLimits};

const BUCKET: &str = "b";
const KEY: &str = "incoming/wide.jpg";

type Store = StoreHandler<FakeTable, FakeLabelIndex, FakePublisher, FakePublisher>;
type Thumbs = ThumbnailHandler<FakeObjectStore, FakeTable, FakePublisher>;

struct Fixture {
    objects: Arc<FakeObjectStore>,
    table: Arc<FakeTable>,
    completions: Arc<FakePublisher>,
    store: Store,
    thumbs: Thumbs,
    accepted: ImageAccepted,
    labeled: ImageLabeled,
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

async fn fixture_with(body: Vec<u8>, table: FakeTable, completions: FakePublisher) -> Fixture {
    let objects = Arc::new(FakeObjectStore::default());
    let etag = objects.insert(BUCKET, KEY, body);
    let id = imgflow_messages::image_id(BUCKET, KEY, &etag);
    let image = ImageRef {
        image_id: id.clone(),
        trace_id: "t".into(),
        bucket: BUCKET.into(),
        key: KEY.into(),
        version_id: None,
        etag: etag.clone(),
        received_at: "2026-11-28T06:00:00.000000Z".into(),
    };
    let table = Arc::new(table);
    let mut record = ImageRecord::new(
        id,
        BUCKET.into(),
        KEY.into(),
        etag,
        image.received_at.clone(),
        ImageStatus::Accepted,
    );
    record.content_type = Some("image/jpeg".into());
    table.write_verdict(&record).await.unwrap();
    let completions = Arc::new(completions);
    Fixture {
        store: StoreHandler::new(
            table.clone(),
            Arc::new(FakeLabelIndex::default()),
            Arc::new(FakePublisher::default()),
            completions.clone(),
        ),
        thumbs: ThumbnailHandler::new(
            objects.clone(),
            table.clone(),
            completions.clone(),
            ThumbnailLimits::default(),
        ),
        accepted: ImageAccepted {
            schema_version: SCHEMA_VERSION,
            image: image.clone(),
            content_type: "image/jpeg".into(),
            size: 0,
            width: 640,
            height: 400,
            accepted_at: "2026-11-28T06:00:00.100000Z".into(),
            relabel: None,
            content_md5: None,
        },
        labeled: ImageLabeled {
            duplicate_of: None,
            schema_version: SCHEMA_VERSION,
            image,
            labels: vec![Label {
                name: "Gradient".into(),
                confidence: 90.0,
                instances: vec![],
                parents: vec![],
                categories: vec![],
            }],
            detector: "fake".into(),
            label_model_version: "1".into(),
            labeled_at: "2026-11-28T06:00:01.000000Z".into(),
        },
        objects,
        table,
        completions,
    }
}

async fn fixture() -> Fixture {
    fixture_with(
        jpeg(640, 400),
        FakeTable::default(),
        FakePublisher::default(),
    )
    .await
}

impl Fixture {
    async fn labels(&self) -> Result<(), imgflow_runtime::consumer::HandleError> {
        self.store
            .handle(&fakes::delivered(self.labeled.encode()))
            .await
    }

    async fn thumbnail(&self) -> Result<(), imgflow_runtime::consumer::HandleError> {
        self.thumbs
            .handle(&fakes::delivered(self.accepted.encode()))
            .await
    }

    fn completions(&self) -> Vec<ImageCompleted> {
        self.completions
            .published()
            .iter()
            .map(|body| ImageCompleted::decode(body).unwrap())
            .collect()
    }

    fn item(&self) -> ImageRecord {
        self.table.items()[&self.accepted.image.image_id].clone()
    }
}

#[tokio::test]
async fn labels_first_then_the_thumbnail_completes_the_image() {
    let f = fixture().await;
    f.labels().await.unwrap();
    assert!(f.completions().is_empty(), "the thumbnail is not there yet");
    f.thumbnail().await.unwrap();
    let done = f.completions();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].completed_by, "thumbnail");
    assert_eq!(done[0].label_names, ["Gradient"]);
    let item = f.item();
    assert_eq!(
        item.completed_at.as_deref(),
        Some(done[0].completed_at.as_str())
    );

    // The thumbnail: an upright JPEG of at most 320 px, where the item says.
    let thumbnail = item.thumbnail.unwrap();
    assert_eq!(thumbnail.key, thumbnail_key(&item.id));
    assert_eq!((thumbnail.width, thumbnail.height), (320, 200));
    assert_eq!(done[0].thumbnail.as_ref(), Some(&thumbnail));
    let stored = f
        .objects
        .get(&ObjectLocation {
            bucket: BUCKET.into(),
            key: thumbnail.key.clone(),
            version_id: None,
        })
        .await
        .unwrap();
    let decoded = image::load_from_memory_with_format(&stored, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (320, 200));
}

#[tokio::test]
async fn thumbnail_first_then_the_labels_complete_the_image() {
    let f = fixture().await;
    f.thumbnail().await.unwrap();
    assert!(f.completions().is_empty());
    f.labels().await.unwrap();
    let done = f.completions();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].completed_by, "labels");
}

#[tokio::test]
async fn both_at_once_and_every_redelivery_complete_the_image_once() {
    for _ in 0..20 {
        let f = fixture().await;
        let (a, b) = tokio::join!(f.labels(), f.thumbnail());
        a.unwrap();
        b.unwrap();
        // Each branch's message again, in both orders, and a duplicate of both at once.
        f.labels().await.unwrap();
        f.thumbnail().await.unwrap();
        f.thumbnail().await.unwrap();
        f.labels().await.unwrap();
        let (a, b) = tokio::join!(f.labels(), f.thumbnail());
        a.unwrap();
        b.unwrap();
        assert_eq!(f.completions().len(), 1);
        assert!(f.item().completed_at.is_some());
    }
}

#[tokio::test]
async fn a_branch_killed_after_recording_the_completion_announces_it_on_redelivery() {
    // The completing publish fails (as if the process died before it): the message comes
    // back, and its redelivery announces the completion it had recorded, once.
    let f = fixture_with(
        jpeg(640, 400),
        FakeTable::default(),
        FakePublisher::default().failing_first([PortErrorKind::Retryable]),
    )
    .await;
    f.labels().await.unwrap();
    let err = f.thumbnail().await.unwrap_err();
    assert_eq!(err.disposition, Disposition::Retry);
    let recorded = f.item().completed_at.expect("recorded before the publish");
    assert!(f.completions().is_empty());
    // The other branch's duplicate does not announce what is the thumbnail's to announce.
    f.labels().await.unwrap();
    assert!(f.completions().is_empty());
    f.thumbnail().await.unwrap();
    let done = f.completions();
    assert_eq!(done.len(), 1);
    assert_eq!(
        done[0].completed_at, recorded,
        "the first completion's time"
    );
    f.thumbnail().await.unwrap();
    assert_eq!(f.completions().len(), 1, "announced: never again");
}

#[tokio::test]
async fn a_branch_killed_between_its_write_and_the_completion_completes_on_redelivery() {
    for labels_last in [true, false] {
        let f = fixture().await;
        // The first branch runs whole; the last one writes its fact, then its completion
        // write fails, as if the process had died between the two.
        let last_fails = || f.table.fail_writes_after(1, [PortErrorKind::Retryable]);
        if labels_last {
            f.thumbnail().await.unwrap();
            last_fails();
            f.labels().await.unwrap_err();
        } else {
            f.labels().await.unwrap();
            last_fails();
            f.thumbnail().await.unwrap_err();
        }
        assert!(f.item().completed_at.is_none());
        assert!(f.completions().is_empty());
        // The redelivery finds the other branch's fact and its own, and completes.
        if labels_last {
            f.labels().await.unwrap();
        } else {
            f.thumbnail().await.unwrap();
        }
        let done = f.completions();
        assert_eq!(done.len(), 1);
        let by = if labels_last { "labels" } else { "thumbnail" };
        assert_eq!(done[0].completed_by, by);
    }
}

#[tokio::test]
async fn an_image_that_does_not_decode_still_completes_without_a_thumbnail() {
    let mut truncated = jpeg(640, 400);
    truncated.truncate(300);
    let f = fixture_with(truncated, FakeTable::default(), FakePublisher::default()).await;
    f.thumbnail().await.unwrap();
    f.labels().await.unwrap();
    let item = f.item();
    assert!(item.thumbnail.is_none());
    assert!(
        item.thumbnail_error
            .as_deref()
            .unwrap()
            .starts_with("cannot decode"),
        "{:?}",
        item.thumbnail_error
    );
    let done = f.completions();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].thumbnail, None);
}

#[tokio::test]
async fn a_deleted_image_keeps_no_thumbnail_and_never_completes() {
    let f = fixture().await;
    f.labels().await.unwrap();
    f.table
        .end(&imgflow_runtime::fakes::deletion(
            &f.accepted.image.image_id,
            1,
        ))
        .await
        .unwrap();
    f.thumbnail().await.unwrap();
    let key = thumbnail_key(&f.accepted.image.image_id);
    let gone = f
        .objects
        .get(&ObjectLocation {
            bucket: BUCKET.into(),
            key,
            version_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        gone.kind,
        PortErrorKind::NotFound,
        "written, refused, removed"
    );
    assert!(f.completions().is_empty());
    assert!(f.item().thumbnail.is_none());
}

#[tokio::test]
async fn an_object_replaced_since_ingest_or_gone_is_recorded_not_retried() {
    let f = fixture().await;
    f.objects.insert(BUCKET, KEY, Bytes::from(jpeg(80, 80)));
    f.thumbnail().await.unwrap();
    assert_eq!(
        f.item().thumbnail_error.as_deref(),
        Some("the object changed since ingest accepted it")
    );
    f.objects.remove(BUCKET, KEY);
    f.thumbnail().await.unwrap();
    assert_eq!(
        f.item().thumbnail_error.as_deref(),
        Some("the object is no longer in the bucket")
    );
}

/// Publishes once both of two callers are about to (or after `patience`, when only one is):
/// the racy point of a completion, held open so two duplicates really overlap there.
struct PausingPublisher {
    inner: FakePublisher,
    barrier: tokio::sync::Barrier,
    patience: std::time::Duration,
}

impl imgflow_runtime::ports::Publisher for PausingPublisher {
    async fn publish(&self, body: String) -> Result<(), imgflow_runtime::PortError> {
        let _ = tokio::time::timeout(self.patience, self.barrier.wait()).await;
        self.inner.publish(body).await
    }
}

/// Two duplicates of the label branch's message (two SQS messages: SNS delivered twice)
/// arrive at once after the thumbnail: both find the join ready, and both reach the
/// completion; only the one that recorded it announces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_duplicates_of_one_branch_at_once_announce_once() {
    for round in 0..10 {
        let f = fixture().await;
        f.thumbnail().await.unwrap();
        let completions = Arc::new(PausingPublisher {
            inner: FakePublisher::default(),
            barrier: tokio::sync::Barrier::new(2),
            patience: std::time::Duration::from_millis(300),
        });
        let store = Arc::new(StoreHandler::new(
            f.table.clone(),
            Arc::new(FakeLabelIndex::default()),
            Arc::new(FakePublisher::default()),
            completions.clone(),
        ));
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = ["m1", "m2"]
            .into_iter()
            .map(|id| {
                let (store, start) = (store.clone(), start.clone());
                let message = fakes::delivered_as(f.labeled.encode(), id);
                tokio::spawn(async move {
                    start.wait().await;
                    store.handle(&message).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(
            completions.inner.published().len(),
            1,
            "round {round}: one announcement"
        );
    }
}

/// Both branches of many images at once on two threads, each pair released together: every
/// image completes, and announces, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_branches_on_two_threads_complete_every_image_once() {
    for round in 0..30 {
        let f = Arc::new(fixture().await);
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let labels = {
            let (f, start) = (f.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                f.labels().await
            })
        };
        let thumbnail = {
            let (f, start) = (f.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                f.thumbnail().await
            })
        };
        labels.await.unwrap().unwrap();
        thumbnail.await.unwrap().unwrap();
        assert_eq!(f.completions().len(), 1, "round {round}");
        assert!(f.item().completed_at.is_some());
    }
}

/// The labels' completion is recorded but its publish fails; before its message comes back, a
/// relabel stores newer labels. The relabel's message (newer labels, another id) takes the
/// unannounced completion over and announces it; the first message's redelivery, its labels
/// superseded, adds nothing.
#[tokio::test]
async fn newer_labels_take_over_a_completion_left_unannounced() {
    let f = fixture_with(
        jpeg(640, 400),
        FakeTable::default(),
        FakePublisher::default().failing_first([PortErrorKind::Retryable]),
    )
    .await;
    f.thumbnail().await.unwrap();
    let first = fakes::delivered_as(f.labeled.encode(), "m1");
    assert!(f.store.handle(&first).await.is_err(), "the publish failed");
    assert!(f.completions().is_empty());
    let newer = ImageLabeled {
        duplicate_of: None,
        labeled_at: "2026-11-28T07:00:00.000000Z".into(),
        ..f.labeled.clone()
    };
    f.store
        .handle(&fakes::delivered_as(newer.encode(), "m3"))
        .await
        .unwrap();
    assert_eq!(
        f.completions().len(),
        1,
        "announced by the relabel's message"
    );
    f.store.handle(&first).await.unwrap();
    assert_eq!(f.completions().len(), 1);
}

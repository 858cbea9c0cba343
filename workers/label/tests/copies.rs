//! Exact copies against in-memory ports: one detector call per picture, confirmed by SHA-256.
use std::{sync::Arc, time::Duration};

use imgflow_label::{ExactCopies, LabelHandler, LabelSettings};
use imgflow_messages::{
    image_id, ImageAccepted, ImageLabeled, ImageRecord, ImageRef, ImageStatus, Label, StageMessage,
    SCHEMA_VERSION,
};
use imgflow_runtime::{
    clock,
    consumer::{Disposition, HandleError, Handler},
    fakes::{self, FakeContentIndex, FakeDetector, FakeObjectStore, FakePublisher, FakeTable},
    ports::{ContentKey, ImageTable},
};

const BUCKET: &str = "bucket";

type Handler_ = LabelHandler<
    FakeDetector,
    FakeTable,
    FakePublisher,
    ExactCopies<FakeObjectStore, FakeContentIndex, FakeTable>,
>;

struct Fixture {
    detector: Arc<FakeDetector>,
    table: Arc<FakeTable>,
    publisher: Arc<FakePublisher>,
    store: Arc<FakeObjectStore>,
    index: FakeContentIndex,
    handler: Handler_,
    stored: std::sync::Mutex<usize>,
}

fn dog() -> Label {
    Label {
        name: "Dog".into(),
        confidence: 91.0,
        instances: vec![],
        parents: vec![],
        categories: vec![],
    }
}

fn fixture() -> Fixture {
    fixture_with(FakeDetector::new(vec![dog()]))
}

fn fixture_with(detector: FakeDetector) -> Fixture {
    let detector = Arc::new(detector);
    let table = Arc::new(FakeTable::default());
    let publisher = Arc::new(FakePublisher::default());
    let store = Arc::new(FakeObjectStore::default());
    let index = FakeContentIndex::default();
    let settings = LabelSettings {
        retry_min_delay: Duration::from_millis(1),
        ..LabelSettings::default()
    };
    let handler = LabelHandler::new(detector.clone(), table.clone(), publisher.clone(), settings)
        .reusing(ExactCopies::new(
            store.clone(),
            Arc::new(index.clone()),
            table.clone(),
            Duration::from_secs(120),
        ));
    Fixture {
        detector,
        table,
        publisher,
        store,
        index,
        handler,
        stored: Default::default(),
    }
}

/// A photo-sized body: `n` decides the bytes.
fn picture(n: u8) -> Vec<u8> {
    (0..50_000u32).map(|i| (i as u8).wrapping_mul(n)).collect()
}

impl Fixture {
    /// Uploads `body` to `key` and records ingest's verdict; the message label receives.
    async fn upload(&self, key: &str, body: &[u8]) -> ImageAccepted {
        let etag = self.store.insert(BUCKET, key, body.to_vec());
        let id = image_id(BUCKET, key, &etag);
        let now = clock::now_rfc3339();
        let record = ImageRecord::new(
            id.clone(),
            BUCKET.into(),
            key.into(),
            etag.clone(),
            now.clone(),
            ImageStatus::Accepted,
        );
        self.table.write_verdict(&record).await.unwrap();
        ImageAccepted {
            schema_version: SCHEMA_VERSION,
            image: ImageRef {
                image_id: id,
                trace_id: "t".into(),
                bucket: BUCKET.into(),
                key: key.into(),
                version_id: None,
                etag,
                received_at: now.clone(),
            },
            content_type: "image/png".into(),
            size: body.len() as u64,
            width: 10,
            height: 10,
            accepted_at: now,
            relabel: None,
            content_md5: None,
        }
    }

    async fn label(&self, accepted: &ImageAccepted) -> Result<(), HandleError> {
        self.handler
            .handle(&fakes::delivered_as(
                accepted.encode(),
                &accepted.image.image_id,
            ))
            .await
    }

    /// Labels `accepted` (it must succeed), then stores what was published.
    async fn labelled(&self, accepted: &ImageAccepted) {
        self.label(accepted).await.unwrap();
        self.store_published().await;
    }

    /// The store stage: writes what label published since the last call.
    async fn store_published(&self) {
        let published = self.publisher.published();
        let from = std::mem::replace(&mut *self.stored.lock().unwrap(), published.len());
        for body in &published[from..] {
            let labeled = ImageLabeled::decode(body).unwrap();
            let now = clock::now_rfc3339();
            self.table.write_labels(&labeled, &now).await.unwrap();
        }
    }

    fn item(&self, accepted: &ImageAccepted) -> ImageRecord {
        self.table.items()[&accepted.image.image_id].clone()
    }
}

#[tokio::test]
async fn one_picture_under_five_keys_costs_one_detector_call() {
    let f = fixture();
    let photo = picture(3);
    let mut images = Vec::new();
    for n in 0..5 {
        images.push(f.upload(&format!("incoming/copy-{n}.png"), &photo).await);
    }
    f.labelled(&images[0]).await;
    for copy in &images[1..] {
        f.label(copy).await.unwrap();
        f.store_published().await;
    }
    assert_eq!(f.detector.calls(), 1);
    let original = f.item(&images[0]);
    assert_eq!(original.duplicate_of, None);
    for copy in &images[1..] {
        let item = f.item(copy);
        assert_eq!(item.status, ImageStatus::Labeled);
        assert_eq!(item.duplicate_of.as_deref(), Some(original.id.as_str()));
        assert_eq!(item.labels, original.labels);
        assert_eq!(item.detector, original.detector);
    }
    // The first copy read its bytes and the original's; the original's digest is cached, so
    // each later copy reads only its own.
    assert_eq!(f.store.range_reads(), 2 + 3);
    let key = ContentKey {
        algorithm: "crc64nvme".into(),
        value: fakes::etag_of(&photo),
        size: photo.len() as u64,
    };
    let entry = f.index.original(&key).unwrap();
    assert_eq!(entry.image_id, original.id);
    assert!(entry.sha256.is_some());
}

#[tokio::test]
async fn a_forged_checksum_borrows_no_labels_and_blocks_no_real_copy() {
    let f = fixture();
    let photo = picture(3);
    let mut other = photo.clone();
    other[100] ^= 1;
    // The forger gets there first with the real photo's checksum and size.
    let forged = f.upload("incoming/forged.png", &other).await;
    f.store
        .forge_checksum(BUCKET, "incoming/forged.png", &fakes::etag_of(&photo));
    f.labelled(&forged).await;
    let original = f.upload("incoming/original.png", &photo).await;
    f.labelled(&original).await;
    assert_eq!(
        f.detector.calls(),
        2,
        "the real photo is labelled on its own"
    );
    assert_eq!(f.item(&original).duplicate_of, None);
    // Its real copies still find it, through its SHA-256.
    let copy = f.upload("incoming/real-copy.png", &photo).await;
    f.labelled(&copy).await;
    assert_eq!(f.detector.calls(), 2);
    assert_eq!(
        f.item(&copy).duplicate_of.as_deref(),
        Some(original.image.image_id.as_str())
    );
}

#[tokio::test]
async fn copies_named_by_their_etag_md5_cost_no_head_and_an_md5_collision_borrows_nothing() {
    let f = fixture();
    let photo = picture(4);
    let mut other = photo.clone();
    other[7] ^= 1;
    // As ingest sends them for a single-part, unencrypted upload to a versioned bucket: the
    // ETag is the MD5, the version id names the bytes.
    let named = |mut accepted: ImageAccepted| {
        accepted.image.version_id = Some(format!("v-{}", accepted.image.key));
        accepted.content_md5 = Some(accepted.image.etag.clone());
        accepted
    };
    // A forger gets there first with other bytes of the real photo's MD5 (a collision, which
    // can be made for a pair of files of the forger's own) and size.
    let mut forged = named(f.upload("incoming/forged.png", &other).await);
    forged.image.etag = fakes::etag_of(&photo);
    forged.content_md5 = Some(fakes::etag_of(&photo));
    f.labelled(&forged).await;
    let original = named(f.upload("incoming/original.png", &photo).await);
    f.labelled(&original).await;
    assert_eq!(
        f.detector.calls(),
        2,
        "the real photo is labelled on its own"
    );
    assert_eq!(f.item(&original).duplicate_of, None);
    let copy = named(f.upload("incoming/copy.png", &photo).await);
    f.labelled(&copy).await;
    assert_eq!(f.detector.calls(), 2, "the real copy found its original");
    assert_eq!(
        f.item(&copy).duplicate_of.as_deref(),
        Some(original.image.image_id.as_str())
    );
    assert_eq!(f.item(&copy).labels, f.item(&original).labels);
    assert_eq!(f.store.heads(), 0, "no image needed a HEAD to be named");
    let key = ContentKey::from_md5(fakes::etag_of(&photo), photo.len() as u64);
    assert_eq!(
        f.index.original(&key).unwrap().image_id,
        forged.image.image_id,
        "the forger keeps the MD5 key; the real photo moved to its SHA-256"
    );
}

#[tokio::test]
async fn an_md5_is_not_trusted_on_an_unversioned_bucket_nor_when_it_is_not_the_etag() {
    let f = fixture();
    let photo = picture(6);
    // Unversioned: the HEAD also says whether the key still holds the accepted bytes.
    let mut unversioned = f.upload("incoming/a.png", &photo).await;
    unversioned.content_md5 = Some(unversioned.image.etag.clone());
    f.label(&unversioned).await.unwrap();
    assert_eq!(f.store.heads(), 1);
    // Versioned, but the MD5 is not the image's ETag (a hand-made message): not used.
    let mut mismatched = f.upload("incoming/b.png", &photo).await;
    mismatched.image.version_id = Some("v1".into());
    mismatched.content_md5 = Some("0".repeat(32));
    f.label(&mismatched).await.unwrap();
    assert_eq!(f.store.heads(), 2);
    assert_eq!(
        f.detector.calls(),
        1,
        "named by checksum, the copy was found"
    );
}

#[tokio::test]
async fn a_copy_waits_while_its_original_is_at_the_detector_and_never_toward_the_dlq() {
    let detector = FakeDetector::new(vec![dog()]).with_delay(Duration::from_millis(300));
    let f = fixture_with(detector);
    let photo = picture(5);
    let original = f.upload("incoming/a.png", &photo).await;
    let copy = f.upload("incoming/b.png", &photo).await;
    // Two messages at once: the copy arrives while the original's detector call runs.
    let at_detector = async {
        f.label(&original).await.unwrap();
    };
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        f.label(&copy).await
    };
    let ((), wait) = tokio::join!(at_detector, meanwhile);
    let wait = wait.unwrap_err();
    assert_eq!(
        wait.disposition,
        Disposition::Requeue,
        "a new message, a fresh receive count"
    );
    assert_eq!(wait.error_class, "original_being_labelled");
    assert!(wait.retry_after.unwrap() <= Duration::from_secs(5));
    // Published, not yet stored: the kept detection is enough to copy.
    f.label(&copy).await.unwrap();
    assert_eq!(f.detector.calls(), 1);
    f.store_published().await;
    assert_eq!(
        f.item(&copy).duplicate_of.as_deref(),
        Some(original.image.image_id.as_str())
    );
    assert_eq!(f.item(&copy).labels, f.item(&original).labels);
}

#[tokio::test]
async fn a_deleted_original_hands_its_place_to_the_next_copy() {
    let f = fixture();
    let photo = picture(7);
    let original = f.upload("incoming/a.png", &photo).await;
    let first_copy = f.upload("incoming/b.png", &photo).await;
    f.labelled(&original).await;
    f.labelled(&first_copy).await;
    f.table
        .end(&fakes::deletion(&original.image.image_id, 1))
        .await
        .unwrap();
    // Copies keep their labels; the next copy pays once and becomes the original.
    assert_eq!(f.item(&first_copy).status, ImageStatus::Labeled);
    let late = f.upload("incoming/c.png", &photo).await;
    f.labelled(&late).await;
    assert_eq!(f.detector.calls(), 2);
    assert_eq!(f.item(&late).duplicate_of, None);
    let again = f.upload("incoming/d.png", &photo).await;
    f.labelled(&again).await;
    assert_eq!(f.detector.calls(), 2);
    assert_eq!(
        f.item(&again).duplicate_of.as_deref(),
        Some(late.image.image_id.as_str())
    );
}

#[tokio::test]
async fn objects_without_a_checksum_are_named_by_their_sha256_read_once() {
    let f = fixture();
    f.store.without_checksums();
    let photo = picture(9);
    let mut images = Vec::new();
    for n in 0..3 {
        images.push(f.upload(&format!("incoming/old-{n}.png"), &photo).await);
    }
    for image in &images {
        f.label(image).await.unwrap();
        f.store_published().await;
    }
    assert_eq!(f.detector.calls(), 1);
    // One read per image names it; a SHA-256 key needs no second read to confirm.
    assert_eq!(f.store.range_reads(), 3);
    assert_eq!(
        f.item(&images[2]).duplicate_of.as_deref(),
        Some(images[0].image.image_id.as_str())
    );
}

#[tokio::test]
async fn a_relabel_of_a_copy_asks_the_detector_and_ends_the_copy() {
    let f = fixture();
    let photo = picture(11);
    let original = f.upload("incoming/a.png", &photo).await;
    let copy = f.upload("incoming/b.png", &photo).await;
    for image in [&original, &copy] {
        f.label(image).await.unwrap();
        f.store_published().await;
    }
    assert_eq!(f.detector.calls(), 1);
    let relabel = ImageAccepted {
        relabel: Some("g2".into()),
        content_md5: None,
        ..copy.clone()
    };
    f.labelled(&relabel).await;
    assert_eq!(f.detector.calls(), 2);
    assert_eq!(f.item(&copy).duplicate_of, None);
}

//! The thumbnail stage's near-duplicate lookup on in-memory ports: a changed copy of a photo
//! is linked to it, different photos are not, and a failing index never holds an image up.
use std::sync::Arc;

use image::{DynamicImage, RgbImage};
use imgflow_messages::{ImageAccepted, ImageRecord, ImageRef, ImageStatus, StageMessage};
use imgflow_runtime::{
    consumer::{Disposition, Handler},
    fakes::{self, FakeNearIndex, FakeObjectStore, FakePublisher, FakeTable},
    ports::{ImageTable, NearIndex, NearMatch, NearPair, PerceptualHash},
    PortError, PortErrorKind,
};
use imgflow_thumbnail::{ThumbnailHandler, ThumbnailLimits};

const BUCKET: &str = "b";

fn photo(seed: u32, width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        let (x, y) = (x * 400 / width, y * 300 / height);
        let v = (((x * (3 + seed)) ^ (y * (5 + 2 * seed))) % 256) as u8;
        image::Rgb([v, v.wrapping_mul(3), 255 - v])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

async fn upload(
    objects: &FakeObjectStore,
    table: &FakeTable,
    key: &str,
    body: Vec<u8>,
) -> ImageAccepted {
    let etag = objects.insert(BUCKET, key, body.clone());
    let id = imgflow_messages::image_id(BUCKET, key, &etag);
    let received_at = "2026-12-07T10:00:00.000000Z".to_owned();
    let record = ImageRecord::new(
        id.clone(),
        BUCKET.into(),
        key.into(),
        etag.clone(),
        received_at.clone(),
        ImageStatus::Accepted,
    );
    table.write_verdict(&record).await.unwrap();
    ImageAccepted {
        schema_version: 1,
        image: ImageRef {
            image_id: id,
            trace_id: "t".into(),
            bucket: BUCKET.into(),
            key: key.into(),
            version_id: None,
            etag,
            received_at: received_at.clone(),
        },
        content_type: "image/png".into(),
        size: body.len() as u64,
        width: 400,
        height: 300,
        accepted_at: received_at,
        relabel: None,
        content_md5: None,
    }
}

#[tokio::test]
async fn a_resized_copy_is_linked_to_its_photo_and_another_photo_is_not() {
    let objects = Arc::new(FakeObjectStore::default());
    let table = Arc::new(FakeTable::default());
    let near = Arc::new(FakeNearIndex::default());
    let thumbs = ThumbnailHandler::new(
        objects.clone(),
        table.clone(),
        Arc::new(FakePublisher::default()),
        ThumbnailLimits::default(),
    )
    .finding_near(near.clone());
    let first = upload(&objects, &table, "incoming/a.png", photo(1, 400, 300)).await;
    let smaller = upload(&objects, &table, "incoming/a-small.png", photo(1, 200, 150)).await;
    let other = upload(&objects, &table, "incoming/b.png", photo(9, 400, 300)).await;
    for accepted in [&first, &smaller, &other] {
        thumbs
            .handle(&fakes::delivered(accepted.encode()))
            .await
            .unwrap();
    }
    let linked = near.near(&first.image.image_id).await.unwrap();
    let ids: Vec<&str> = linked.iter().map(|m| m.image_id.as_str()).collect();
    assert_eq!(ids, [smaller.image.image_id.as_str()], "{linked:?}");
    assert!(near.near(&other.image.image_id).await.unwrap().is_empty());
    let stored = table.get(&smaller.image.image_id).await.unwrap().unwrap();
    assert!(stored.thumbnail.unwrap().perceptual_hash.is_some());
}

/// An index that always fails, transiently or not.
struct Broken(PortErrorKind);

impl NearIndex for Broken {
    async fn record(
        &self,
        _: &str,
        _: PerceptualHash,
        _: &str,
    ) -> Result<Vec<NearMatch>, PortError> {
        Err(PortError::new(self.0, "dynamodb:Query", "injected"))
    }

    async fn near(&self, _: &str) -> Result<Vec<NearMatch>, PortError> {
        Ok(Vec::new())
    }

    async fn recent_pairs(&self, _: usize) -> Result<Vec<NearPair>, PortError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_failing_index_is_retried_twice_then_given_up_and_the_image_completes() {
    for (kind, retried) in [
        (PortErrorKind::Throttled, true),
        (PortErrorKind::Fatal, false),
    ] {
        let objects = Arc::new(FakeObjectStore::default());
        let table = Arc::new(FakeTable::default());
        let thumbs = ThumbnailHandler::new(
            objects.clone(),
            table.clone(),
            Arc::new(FakePublisher::default()),
            ThumbnailLimits::default(),
        )
        .finding_near(Arc::new(Broken(kind)));
        let accepted = upload(&objects, &table, "incoming/a.png", photo(1, 400, 300)).await;
        let mut message = fakes::delivered(accepted.encode());
        let first = thumbs.handle(&message).await;
        match retried {
            true => assert_eq!(first.unwrap_err().disposition, Disposition::Retry),
            false => first.unwrap(),
        }
        // The thumbnail is recorded either way; a late delivery gives the links up.
        let item = table.get(&accepted.image.image_id).await.unwrap().unwrap();
        assert!(item.thumbnail.is_some(), "{kind:?}");
        message.receive_count = 3;
        thumbs.handle(&message).await.unwrap();
    }
}

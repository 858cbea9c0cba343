//! The store stage against in-memory ports.
use std::sync::Arc;

use imgflow_catalog::fakes::FakeLabelIndex;
use imgflow_messages::{ImageLabeled, ImageRef, ImageStored, Label, StageMessage};
use imgflow_runtime::{
    consumer::{Disposition, Handler},
    fakes::{self, FakePublisher, FakeTable},
    ports::ReceivedMessage,
    PortErrorKind,
};
use imgflow_store::StoreHandler;

fn labeled(name: &str, labeled_at: &str) -> ImageLabeled {
    ImageLabeled {
        duplicate_of: None,
        schema_version: 1,
        image: ImageRef {
            image_id: "a".into(),
            trace_id: "t".into(),
            bucket: "b".into(),
            key: "incoming/x.png".into(),
            version_id: None,
            etag: "e".into(),
            received_at: "2026-11-27T03:40:11.532000Z".into(),
        },
        labels: vec![
            Label {
                name: "Low".into(),
                confidence: 60.0,
                instances: vec![],
                parents: vec![],
                categories: vec![],
            },
            Label {
                name: name.into(),
                confidence: 90.0,
                instances: vec![],
                parents: vec![],
                categories: vec![],
            },
        ],
        detector: "fake".into(),
        label_model_version: "1".into(),
        labeled_at: labeled_at.into(),
    }
}

fn message(body: String) -> ReceivedMessage {
    fakes::delivered(body)
}

#[tokio::test]
async fn labels_are_stored_and_announced_most_confident_first() {
    let table = Arc::new(FakeTable::default());
    let publisher = Arc::new(FakePublisher::default());
    let index = Arc::new(FakeLabelIndex::default());
    let handler = StoreHandler::new(
        table.clone(),
        index.clone(),
        publisher.clone(),
        Arc::new(FakePublisher::default()),
    );
    handler
        .handle(&message(
            labeled("Cat", "2026-11-27T03:40:12.000000Z").encode(),
        ))
        .await
        .unwrap();
    let item = &table.items()["a"];
    assert_eq!(item.top_labels(1), vec!["Cat"]);
    let stored = ImageStored::decode(&publisher.published()[0]).unwrap();
    assert_eq!(stored.label_names, vec!["Cat", "Low"]);
    assert_eq!(index.images_with_label("CAT"), ["a"]);
    assert_eq!(index.len(), 2, "one entry per label");
}

#[tokio::test]
async fn newer_labels_replace_the_old_ones_in_the_label_index() {
    let table = Arc::new(FakeTable::default());
    let publisher = Arc::new(FakePublisher::default());
    let index = Arc::new(FakeLabelIndex::default());
    let handler = StoreHandler::new(
        table.clone(),
        index.clone(),
        publisher.clone(),
        Arc::new(FakePublisher::default()),
    );
    let first = labeled("Cat", "2026-11-27T03:40:12.000000Z");
    handler.handle(&message(first.encode())).await.unwrap();
    // A redelivery adds no entry.
    handler.handle(&message(first.encode())).await.unwrap();
    assert_eq!(index.len(), 2);
    let relabeled = labeled("Dog", "2026-11-27T03:41:00.000000Z");
    handler.handle(&message(relabeled.encode())).await.unwrap();
    assert!(index.images_with_label("cat").is_empty());
    assert_eq!(index.images_with_label("dog"), ["a"]);
    assert_eq!(
        index.len(),
        2,
        "the old entries were deleted, not only hidden"
    );
}

#[tokio::test]
async fn an_older_message_never_overwrites_newer_labels() {
    let table = Arc::new(FakeTable::default());
    let publisher = Arc::new(FakePublisher::default());
    let index = Arc::new(FakeLabelIndex::default());
    let handler = StoreHandler::new(
        table.clone(),
        index.clone(),
        publisher.clone(),
        Arc::new(FakePublisher::default()),
    );
    let newer = labeled("Dog", "2026-11-27T03:40:13.000000Z");
    let older = labeled("Cat", "2026-11-27T03:40:12.000000Z");
    handler.handle(&message(newer.encode())).await.unwrap();
    handler.handle(&message(older.encode())).await.unwrap();
    assert_eq!(table.items()["a"].top_labels(1), vec!["Dog"]);
    assert!(
        index.images_with_label("cat").is_empty(),
        "the stale labels were not indexed"
    );
    assert_eq!(
        publisher.published().len(),
        1,
        "the stale message announced nothing"
    );

    // The same message again is harmless: same item, announced again for at-least-once.
    handler.handle(&message(newer.encode())).await.unwrap();
    assert_eq!(table.items().len(), 1);
    assert_eq!(table.items()["a"].top_labels(1), vec!["Dog"]);
}

#[tokio::test]
async fn a_malformed_message_is_dead_lettered() {
    let handler = StoreHandler::new(
        Arc::new(FakeTable::default()),
        Arc::new(FakeLabelIndex::default()),
        Arc::new(FakePublisher::default()),
        Arc::new(FakePublisher::default()),
    );
    let err = handler
        .handle(&message("[1,2,3]".into()))
        .await
        .unwrap_err();
    assert_eq!(err.disposition, Disposition::DeadLetter);
}

#[tokio::test]
async fn table_and_publisher_failures_retry_or_dead_letter_and_a_redelivery_finishes_once() {
    let table = Arc::new(
        FakeTable::default().failing_writes([PortErrorKind::Throttled, PortErrorKind::Fatal]),
    );
    let publisher = Arc::new(FakePublisher::default().failing_first([PortErrorKind::Retryable]));
    let index = Arc::new(FakeLabelIndex::default());
    let handler = StoreHandler::new(
        table.clone(),
        index.clone(),
        publisher.clone(),
        Arc::new(FakePublisher::default()),
    );
    let body = message(labeled("Cat", "2026-11-27T03:40:12.000000Z").encode());
    let outcomes: Vec<_> = [
        handler.handle(&body).await.unwrap_err(),
        handler.handle(&body).await.unwrap_err(),
        handler.handle(&body).await.unwrap_err(),
    ]
    .iter()
    .map(|e| (e.disposition, e.error_class))
    .collect();
    assert_eq!(
        outcomes,
        vec![
            (Disposition::Retry, "table_write_failed"),
            (Disposition::DeadLetter, "table_write_failed"),
            (Disposition::Retry, "publish_failed"),
        ]
    );
    // The labels were written before the publish failed; the redelivery writes the same
    // (equal-time) labels again and announces them once.
    handler.handle(&body).await.unwrap();
    assert_eq!(publisher.published().len(), 1);
    assert_eq!(table.items()["a"].labels.as_ref().unwrap().len(), 2);
}

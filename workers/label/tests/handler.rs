//! The label stage against in-memory ports.
use std::{sync::Arc, time::Duration};

use imgflow_label::{LabelHandler, LabelSettings};
use imgflow_messages::{
    ImageAccepted, ImageLabeled, ImageRecord, ImageRef, ImageStatus, Label, NamedRef, StageMessage,
};
use imgflow_runtime::{
    consumer::{Disposition, Handler},
    fakes::{self, FakeDetector, FakePublisher, FakeTable},
    ports::{ImageTable, LabelClaim, ReceivedMessage},
    PortErrorKind,
};

fn cat() -> Label {
    Label {
        name: "Cat".into(),
        confidence: 97.5,
        instances: vec![],
        parents: vec![NamedRef::new("Animal")],
        categories: vec![],
    }
}

fn accepted(id: &str) -> ImageAccepted {
    ImageAccepted {
        schema_version: 1,
        image: ImageRef {
            image_id: id.into(),
            trace_id: "t".into(),
            bucket: "b".into(),
            key: "incoming/cat.png".into(),
            version_id: None,
            etag: "e".into(),
            received_at: "2026-11-27T03:40:11.532000Z".into(),
        },
        content_type: "image/png".into(),
        size: 10,
        width: 100,
        height: 100,
        accepted_at: "2026-11-27T03:40:11.600000Z".into(),
        relabel: None,
        content_md5: None,
    }
}

fn message(body: String) -> ReceivedMessage {
    fakes::delivered(body)
}

fn settings() -> LabelSettings {
    LabelSettings {
        retry_min_delay: Duration::from_millis(1),
        ..LabelSettings::default()
    }
}

struct Fixture {
    detector: Arc<FakeDetector>,
    table: Arc<FakeTable>,
    publisher: Arc<FakePublisher>,
    handler: LabelHandler<FakeDetector, FakeTable, FakePublisher>,
}

fn fixture(detector: FakeDetector) -> Fixture {
    fixture_with(detector, FakePublisher::default())
}

fn fixture_with(detector: FakeDetector, publisher: FakePublisher) -> Fixture {
    let detector = Arc::new(detector);
    let table = Arc::new(FakeTable::default());
    let publisher = Arc::new(publisher);
    let handler = LabelHandler::new(
        detector.clone(),
        table.clone(),
        publisher.clone(),
        settings(),
    );
    Fixture {
        detector,
        table,
        publisher,
        handler,
    }
}

#[tokio::test]
async fn labels_are_published_in_rekognition_shape() {
    let f = fixture(FakeDetector::new(vec![cat()]));
    f.handler
        .handle(&message(accepted("a").encode()))
        .await
        .unwrap();
    let published = f.publisher.published();
    assert_eq!(published.len(), 1);
    let labeled = ImageLabeled::decode(&published[0]).unwrap();
    assert_eq!(labeled.image.image_id, "a");
    assert_eq!(labeled.labels, vec![cat()]);
    assert_eq!(labeled.detector, "fake");
    assert_eq!(labeled.label_model_version, "fake-1");
}

#[tokio::test]
async fn a_detector_failing_transiently_twice_is_retried_within_the_handler() {
    let f = fixture(
        FakeDetector::new(vec![cat()])
            .failing_first([PortErrorKind::Throttled, PortErrorKind::Retryable]),
    );
    f.handler
        .handle(&message(accepted("a").encode()))
        .await
        .unwrap();
    assert_eq!(f.detector.calls(), 3);
    assert_eq!(f.publisher.published().len(), 1);
}

#[tokio::test]
async fn a_detector_throttling_past_its_attempts_leaves_the_message_for_retry() {
    let f = fixture(FakeDetector::new(vec![cat()]).failing_first([PortErrorKind::Throttled; 10]));
    let err = f
        .handler
        .handle(&message(accepted("a").encode()))
        .await
        .unwrap_err();
    assert_eq!(err.disposition, Disposition::Retry);
    assert_eq!(err.error_class, "detector_throttled");
    assert_eq!(f.detector.calls(), settings().attempts);
    assert!(f.publisher.published().is_empty());
}

#[tokio::test]
async fn throttling_lowers_the_detector_concurrency_and_success_raises_it_again() {
    let f = fixture(FakeDetector::new(vec![cat()]).failing_first([PortErrorKind::Throttled; 3]));
    let start = f.handler.detector_limit();
    f.handler
        .handle(&message(accepted("a").encode()))
        .await
        .unwrap();
    let after = f.handler.detector_limit();
    assert!(after < start / 4.0, "three throttles: {start} → {after}");
    for i in 0..20 {
        f.handler
            .handle(&message(accepted(&format!("b{i}")).encode()))
            .await
            .unwrap();
    }
    assert!(
        f.handler.detector_limit() > after,
        "successes grow the limit back"
    );
}

#[tokio::test]
async fn an_image_the_detector_refuses_is_recorded_rejected_not_retried() {
    let f = fixture(FakeDetector::new(vec![]).failing_first([PortErrorKind::Invalid]));
    let record = ImageRecord::new(
        "a".into(),
        "b".into(),
        "k".into(),
        "e".into(),
        "t".into(),
        ImageStatus::Accepted,
    );
    f.table.write_verdict(&record).await.unwrap();
    f.handler
        .handle(&message(accepted("a").encode()))
        .await
        .unwrap();
    let item = &f.table.items()["a"];
    assert_eq!(item.status, ImageStatus::Rejected);
    assert!(item.reason.as_deref().unwrap().contains("injected invalid"));
    assert_eq!(f.detector.calls(), 1);
}

#[tokio::test]
async fn labels_already_stored_by_this_detector_skip_the_detector() {
    let f = fixture(FakeDetector::new(vec![cat()]));
    let labeled = ImageLabeled {
        duplicate_of: None,
        schema_version: 1,
        image: accepted("a").image,
        labels: vec![cat()],
        detector: "fake".into(),
        label_model_version: "fake-1".into(),
        labeled_at: "2026-11-27T03:40:12.000000Z".into(),
    };
    f.table
        .write_labels(&labeled, "2026-11-27T05:00:00.000000Z")
        .await
        .unwrap();
    f.handler
        .handle(&message(accepted("a").encode()))
        .await
        .unwrap();
    assert_eq!(f.detector.calls(), 0);
    assert!(f.publisher.published().is_empty());
}

fn with_id(message_id: &str) -> ReceivedMessage {
    let mut m = message(accepted("a").encode());
    m.message_id = message_id.into();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_meeting_a_live_claim_comes_back_after_the_lease_and_costs_nothing() {
    // Slow enough that the duplicate really arrives while the first holds the claim.
    let f = fixture(FakeDetector::new(vec![cat()]).with_delay(Duration::from_millis(300)));
    let (first, duplicate) = (with_id("m1"), with_id("m2"));
    let (a, b) = tokio::join!(f.handler.handle(&first), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        f.handler.handle(&duplicate).await
    });
    a.unwrap();
    let held = b.unwrap_err();
    assert_eq!(
        (held.disposition, held.error_class),
        (Disposition::Retry, "label_claim_held"),
        "the duplicate is not deleted while the holder may still fail"
    );
    let delay = held.retry_after.expect("back after the lease");
    let lease = settings().claim_lease;
    assert!(
        delay > lease - Duration::from_secs(2) && delay <= lease + Duration::from_secs(1),
        "{delay:?} against a lease of {lease:?}"
    );
    assert_eq!(f.detector.calls(), 1);
    // The holder's own redelivery republishes its kept detection: no second call.
    f.handler.handle(&first).await.unwrap();
    assert_eq!(f.detector.calls(), 1);
    // Back after the lease, the store stage has written the labels: it is dropped, still at
    // one call and without another publish.
    let published = f.publisher.published();
    let labeled = ImageLabeled::decode(&published[0]).unwrap();
    f.table
        .write_labels(&labeled, "2026-11-27T03:40:13.000000Z")
        .await
        .unwrap();
    f.handler.handle(&duplicate).await.unwrap();
    f.handler.handle(&first).await.unwrap();
    assert_eq!(f.detector.calls(), 1);
    assert_eq!(f.publisher.published().len(), published.len());
}

#[tokio::test]
async fn a_replay_of_a_dead_lettered_message_within_the_lease_labels_the_image_without_paying_again(
) {
    let f = fixture_with(
        FakeDetector::new(vec![cat()]),
        FakePublisher::default().failing_first([PortErrorKind::Fatal]),
    );
    let failed = f.handler.handle(&with_id("m1")).await.unwrap_err();
    assert_eq!(
        (failed.disposition, failed.error_class),
        (Disposition::DeadLetter, "publish_failed")
    );
    // `imgflow dlq replay` sends a copy: a new message id, well within the first's lease.
    f.handler.handle(&with_id("replayed")).await.unwrap();
    let published = f.publisher.published();
    assert_eq!(published.len(), 1, "the replay published the labels");
    assert_eq!(
        ImageLabeled::decode(&published[0]).unwrap().labels,
        vec![cat()]
    );
    assert_eq!(f.detector.calls(), 1, "the kept detection was republished");
}

#[tokio::test]
async fn paid_labels_survive_a_publisher_failing_three_times() {
    let f = fixture_with(
        FakeDetector::new(vec![cat()]),
        FakePublisher::default().failing_first([PortErrorKind::Retryable; 3]),
    );
    let message = with_id("m1");
    for _ in 0..3 {
        let err = f.handler.handle(&message).await.unwrap_err();
        assert_eq!(
            (err.disposition, err.error_class),
            (Disposition::Retry, "publish_failed")
        );
    }
    f.handler.handle(&message).await.unwrap();
    assert_eq!(f.detector.calls(), 1);
    assert_eq!(f.publisher.published().len(), 1);
}

#[tokio::test]
async fn a_permission_error_goes_to_the_dead_letter_queue_and_frees_the_image_for_its_replay() {
    // AccessDenied: a person must fix the deployment; the message waits for them.
    let f = fixture(FakeDetector::new(vec![cat()]).failing_first([PortErrorKind::Fatal]));
    let err = f.handler.handle(&with_id("m1")).await.unwrap_err();
    assert_eq!(
        (err.disposition, err.error_class),
        (Disposition::DeadLetter, "detector_failed")
    );
    assert!(f.publisher.published().is_empty());
    f.handler.handle(&with_id("replayed")).await.unwrap();
    assert_eq!(f.publisher.published().len(), 1);
    assert_eq!(f.detector.calls(), 2);
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_holder_is_taken_over_after_its_lease() {
    let f = fixture(FakeDetector::new(vec![cat()]));
    // The holder claimed, then died before detecting: its lease has already ended.
    let past = "2000-01-01T00:00:00.000000Z";
    let claim = f
        .table
        .claim_labeling("a", "fake", "crashed", past, past)
        .await
        .unwrap();
    assert_eq!(claim, LabelClaim::Granted { pending: None });
    f.handler.handle(&with_id("redelivered")).await.unwrap();
    assert_eq!(f.detector.calls(), 1);
    assert_eq!(f.publisher.published().len(), 1);
}

#[tokio::test]
async fn unreadable_messages_are_dead_lettered_by_class() {
    let f = fixture(FakeDetector::new(vec![cat()]));
    let err = f.handler.handle(&message("{}".into())).await.unwrap_err();
    assert_eq!(
        (err.disposition, err.error_class),
        (Disposition::DeadLetter, "malformed_message")
    );
    let newer = accepted("a")
        .encode()
        .replace("\"schema_version\":1", "\"schema_version\":7");
    let err = f.handler.handle(&message(newer)).await.unwrap_err();
    assert_eq!(
        (err.disposition, err.error_class),
        (Disposition::DeadLetter, "unsupported_schema")
    );
    assert_eq!(f.detector.calls(), 0);
}

/// A copy of `body` as SQS would deliver another message carrying it.
fn copy(body: String, message_id: &str) -> ReceivedMessage {
    ReceivedMessage {
        message_id: message_id.into(),
        ..message(body)
    }
}

#[tokio::test]
async fn a_relabel_gets_past_stored_labels_once_per_generation() {
    let f = fixture(FakeDetector::new(vec![cat()]));
    let first = accepted("a");
    let record = ImageRecord::new(
        "a".into(),
        "b".into(),
        "incoming/cat.png".into(),
        "e".into(),
        first.image.received_at.clone(),
        ImageStatus::Accepted,
    );
    f.table.write_verdict(&record).await.unwrap();
    f.handler.handle(&copy(first.encode(), "m1")).await.unwrap();
    let labeled = ImageLabeled::decode(&f.publisher.published()[0]).unwrap();
    f.table.write_labels(&labeled, "now").await.unwrap();
    // A duplicate of the upload's message: labels stored, no call.
    f.handler.handle(&copy(first.encode(), "m2")).await.unwrap();
    assert_eq!(f.detector.calls(), 1);

    let relabel = |generation: &str| ImageAccepted {
        relabel: Some(generation.into()),
        content_md5: None,
        ..accepted("a")
    };
    f.handler
        .handle(&copy(relabel("g1").encode(), "m3"))
        .await
        .unwrap();
    assert_eq!(f.detector.calls(), 2, "the relabel calls the detector");
    // Duplicates of that relabel message (redelivered, or sent twice): no further call.
    f.handler
        .handle(&copy(relabel("g1").encode(), "m3"))
        .await
        .unwrap();
    f.handler
        .handle(&copy(relabel("g1").encode(), "m4"))
        .await
        .unwrap();
    assert_eq!(f.detector.calls(), 2);
    // A later relabel is a new generation.
    f.handler
        .handle(&copy(relabel("g2").encode(), "m5"))
        .await
        .unwrap();
    assert_eq!(f.detector.calls(), 3);
    assert_eq!(f.publisher.published().len(), 3);
}

#[tokio::test]
async fn a_deleted_image_is_not_labelled_or_relabelled() {
    let f = fixture(FakeDetector::new(vec![cat()]));
    let record = ImageRecord::new(
        "a".into(),
        "b".into(),
        "incoming/cat.png".into(),
        "e".into(),
        accepted("a").image.received_at,
        ImageStatus::Accepted,
    );
    f.table.write_verdict(&record).await.unwrap();
    f.table
        .end(&imgflow_runtime::fakes::deletion("a", 1))
        .await
        .unwrap();
    f.handler
        .handle(&copy(accepted("a").encode(), "m1"))
        .await
        .unwrap();
    let relabel = ImageAccepted {
        relabel: Some("g1".into()),
        content_md5: None,
        ..accepted("a")
    };
    f.handler
        .handle(&copy(relabel.encode(), "m2"))
        .await
        .unwrap();
    assert_eq!(f.detector.calls(), 0);
    assert!(f.publisher.published().is_empty());
}

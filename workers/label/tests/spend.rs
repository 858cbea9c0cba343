//! The detector budget and the stage-wide rate against in-memory ports.
use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use imgflow_label::{CallLimit, LabelHandler, LabelSettings, Spend};
use imgflow_messages::{ImageAccepted, ImageRef, Label, StageMessage, SCHEMA_VERSION};
use imgflow_runtime::{
    consumer::{Admission, Batch, Consumer, ConsumerConfig, Handler},
    fakes::{FakeCallCounter, FakeDetector, FakePublisher, FakeQueue, FakeTable},
    ports::{DetectRequest, Detection, LabelDetector},
    PortError, PortErrorKind,
};

fn accepted(n: usize) -> String {
    ImageAccepted {
        schema_version: SCHEMA_VERSION,
        image: ImageRef {
            image_id: format!("img{n}"),
            trace_id: "t".into(),
            bucket: "b".into(),
            key: format!("incoming/{n}.png"),
            version_id: None,
            etag: format!("e{n}"),
            received_at: "2026-12-07T10:00:00.000000Z".into(),
        },
        content_type: "image/png".into(),
        size: 10,
        width: 100,
        height: 100,
        accepted_at: "2026-12-07T10:00:00.100000Z".into(),
        relabel: None,
        content_md5: None,
    }
    .encode()
}

fn label() -> Label {
    Label {
        name: "Cat".into(),
        confidence: 90.0,
        instances: vec![],
        parents: vec![],
        categories: vec![],
    }
}

fn settings() -> LabelSettings {
    LabelSettings {
        retry_min_delay: Duration::from_millis(1),
        ..LabelSettings::default()
    }
}

fn limit(text: &str) -> Option<CallLimit> {
    Some(text.parse().unwrap())
}

/// Sleeps into the first tenth of the next window of `seconds`, so a test's calls do not
/// straddle two windows by chance.
async fn at_window_start(seconds: u64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into = Duration::from_nanos((now.as_nanos() % (seconds as u128 * 1_000_000_000)) as u64);
    tokio::time::sleep(Duration::from_secs(seconds) - into + Duration::from_millis(20)).await;
}

#[tokio::test]
async fn a_budget_of_n_labels_n_and_the_rest_wait_in_the_queue_not_the_dead_letter_queue() {
    let detector = Arc::new(FakeDetector::new(vec![label()]));
    let counter = FakeCallCounter::default();
    let handler = LabelHandler::new(
        detector.clone(),
        Arc::new(FakeTable::default()),
        Arc::new(FakePublisher::default()),
        settings(),
    )
    .spending(Some(Spend::new(
        Arc::new(counter.clone()),
        "fake",
        limit("3/2s"),
        None,
    )));
    let handler = Arc::new(handler);
    let queue = Arc::new(FakeQueue::new());
    for n in 0..7 {
        queue.send(accepted(n));
    }
    let consumer = Consumer::new(
        queue.clone(),
        handler.clone(),
        ConsumerConfig {
            wait_time: Duration::ZERO,
            ..ConsumerConfig::new("label")
        },
    );
    at_window_start(2).await;
    assert_eq!(handler.admission().await, Admission::Open);
    let Batch::Processed(first) = consumer.process_batch().await.unwrap() else {
        panic!("a batch");
    };
    assert_eq!((first.received, first.succeeded), (7, 3));
    assert_eq!(detector.calls(), 3);
    // The other four went back as new messages, delayed to the window's end; none is
    // dead-lettered, none left in flight, and the stage stops receiving.
    assert_eq!(queue.requeued(), 4);
    assert!(queue.dead_letters().is_empty());
    assert_eq!(queue.in_flight(), 0);
    let delays = queue.retry_delays();
    assert!(
        delays.iter().all(|d| *d <= Duration::from_secs(3)),
        "{delays:?}"
    );
    let Admission::Paused { for_, .. } = handler.admission().await else {
        panic!("paused while the budget is spent");
    };
    assert!(for_ <= Duration::from_secs(2));

    // The window turns: work resumes by itself, three more, then one.
    tokio::time::sleep(for_ + Duration::from_millis(50)).await;
    assert_eq!(handler.admission().await, Admission::Open);
    queue.expire_delays();
    consumer.process_batch().await.unwrap();
    assert_eq!(detector.calls(), 6);
    at_window_start(2).await;
    queue.expire_delays();
    consumer.process_batch().await.unwrap();
    assert_eq!(detector.calls(), 7);
    assert!(queue.dead_letters().is_empty());
    assert_eq!(queue.visible() + queue.in_flight(), 0);
}

#[tokio::test]
async fn calls_not_made_are_not_counted() {
    let detector =
        Arc::new(FakeDetector::new(vec![label()]).failing_first([PortErrorKind::Invalid]));
    let counter = FakeCallCounter::default();
    let spend = Spend::new(Arc::new(counter.clone()), "fake", limit("5/h"), None);
    let handler = LabelHandler::new(
        detector.clone(),
        Arc::new(FakeTable::default()),
        Arc::new(FakePublisher::default()),
        settings(),
    )
    .spending(Some(spend));
    handler
        .handle(&imgflow_runtime::fakes::delivered(accepted(1)))
        .await
        .unwrap();
    assert_eq!(detector.calls(), 1, "refused as an invalid image");
    assert_eq!(counter.total("budget#fake"), 0);
}

/// Records when each call started.
struct Timed {
    starts: Mutex<Vec<SystemTime>>,
}

impl LabelDetector for Timed {
    fn name(&self) -> &str {
        "timed"
    }

    async fn detect(&self, _: &DetectRequest) -> Result<Detection, PortError> {
        self.starts.lock().unwrap().push(SystemTime::now());
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(Detection {
            labels: vec![label()],
            label_model_version: "1".into(),
        })
    }
}

/// Two replicas (two handlers sharing one counter) labelling at once hold the stage to its
/// rate: no second sees more calls start than the rate, whichever replica makes them.
#[tokio::test]
async fn two_replicas_share_one_rate() {
    let counter = FakeCallCounter::default();
    let detector = Arc::new(Timed {
        starts: Mutex::default(),
    });
    let replica = || {
        Arc::new(
            LabelHandler::new(
                detector.clone(),
                Arc::new(FakeTable::default()),
                Arc::new(FakePublisher::default()),
                settings(),
            )
            .spending(Some(Spend::new(
                Arc::new(counter.clone()),
                "timed",
                None,
                limit("4/s"),
            ))),
        )
    };
    let (a, b) = (replica(), replica());
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let handler = if n % 2 == 0 { a.clone() } else { b.clone() };
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                handler
                    .handle(&imgflow_runtime::fakes::delivered_as(
                        accepted(n),
                        &format!("m{n}"),
                    ))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let starts = detector.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 12);
    let mut per_second = std::collections::BTreeMap::<u64, usize>::new();
    for start in &starts {
        let second = start.duration_since(UNIX_EPOCH).unwrap().as_secs();
        *per_second.entry(second).or_default() += 1;
    }
    assert!(per_second.values().all(|n| *n <= 4), "{per_second:?}");
    assert!(per_second.len() >= 3, "12 calls at 4/s span three seconds");
}

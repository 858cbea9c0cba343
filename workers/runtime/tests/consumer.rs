//! The consumer loop against an in-memory queue: deletes, retries, dead letters, concurrency,
//! shutdown.
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use imgflow_runtime::{
    consumer::{retry_delay, Batch, BatchReport, Consumer, ConsumerConfig, HandleError, Handler},
    fakes::FakeQueue,
    ports::ReceivedMessage,
    shutdown,
};

/// Succeeds on "ok", retries on "retry", dead-letters on "poison"; tracks concurrency.
#[derive(Default)]
struct Scripted {
    running: AtomicUsize,
    max_running: AtomicUsize,
    delay: Duration,
}

impl Handler for Scripted {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandleError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        match message.body.as_str() {
            "retry" => Err(HandleError::retry("flaky", "try again")),
            "poison" => Err(HandleError::dead_letter(
                "malformed_message",
                "cannot parse",
            )),
            _ => Ok(()),
        }
    }
}

fn config() -> ConsumerConfig {
    ConsumerConfig {
        wait_time: Duration::ZERO,
        ..ConsumerConfig::new("test")
    }
}

#[tokio::test]
async fn successes_are_deleted_failures_retried_with_backoff_poison_dead_lettered() {
    let queue = Arc::new(FakeQueue::new());
    for body in ["ok", "retry", "poison", "ok"] {
        queue.send(body);
    }
    let consumer = Consumer::new(queue.clone(), Arc::new(Scripted::default()), config());
    let batch = consumer.process_batch().await.unwrap();
    assert_eq!(
        batch,
        Batch::Processed(BatchReport {
            received: 4,
            succeeded: 2,
            retried: 1,
            dead_lettered: 1,
            released: 0,
        })
    );
    assert_eq!(consumer.process_batch().await.unwrap(), Batch::Empty);
    assert_eq!(queue.in_flight(), 0, "nothing is left hanging");
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "poison");
    assert_eq!(dead[0].1.error_class, "malformed_message");
    assert_eq!(dead[0].1.error, "malformed_message: cannot parse");
    assert_eq!(dead[0].1.stage, "test");

    // The retried message comes back after its backoff, with a longer one the next time.
    let first = queue.retry_delays()[0];
    queue.expire_delays();
    consumer.process_batch().await.unwrap();
    let second = queue.retry_delays()[0];
    assert!(first >= Duration::from_secs(2), "{first:?}");
    assert!(second >= Duration::from_secs(4), "{second:?}");
}

#[tokio::test]
async fn a_failed_delete_or_dead_letter_send_loses_nothing_and_repeats_harmlessly() {
    let queue = Arc::new(FakeQueue::new());
    for body in ["ok", "ok", "poison"] {
        queue.send(body);
    }
    queue.fail_deletes(1);
    queue.fail_dead_letters(1);
    let consumer = Consumer::new(queue.clone(), Arc::new(Scripted::default()), config());
    let first = consumer.process_batch().await.unwrap();
    assert!(matches!(first, Batch::Processed(r) if r.succeeded == 2 && r.retried == 1));
    assert_eq!(
        queue.in_flight(),
        2,
        "the undeleted success and the poison whose copy failed both stay on the queue"
    );
    assert!(queue.dead_letters().is_empty());
    // Their visibility ends: the success is handled again (idempotently), the poison lands.
    queue.expire_in_flight();
    let second = consumer.process_batch().await.unwrap();
    assert!(matches!(second, Batch::Processed(r) if r.succeeded == 1 && r.dead_lettered == 1));
    assert_eq!((queue.in_flight(), queue.visible()), (0, 0));
    assert_eq!(queue.dead_letters().len(), 1);
}

#[test]
fn retry_delays_grow_and_are_capped() {
    let c = ConsumerConfig::new("x");
    for attempt in 1..40 {
        let d = retry_delay(&c, attempt);
        assert!(
            d >= c.retry_min_delay.min(c.retry_max_delay) && d <= c.retry_max_delay,
            "{attempt}: {d:?}"
        );
    }
    assert!(retry_delay(&c, 3) >= Duration::from_secs(8));
    assert_eq!(retry_delay(&c, 30), c.retry_max_delay);
}

#[tokio::test]
async fn handling_is_bounded_by_the_configured_concurrency() {
    let queue = Arc::new(FakeQueue::new());
    for _ in 0..10 {
        queue.send("ok");
    }
    let handler = Arc::new(Scripted {
        delay: Duration::from_millis(20),
        ..Scripted::default()
    });
    let consumer = Consumer::new(
        queue,
        handler.clone(),
        ConsumerConfig {
            concurrency: 3,
            ..config()
        },
    );
    consumer.process_batch().await.unwrap();
    assert_eq!(handler.max_running.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn shutdown_stops_polling_and_finishes_what_was_received() {
    let queue = Arc::new(FakeQueue::new());
    for _ in 0..5 {
        queue.send("ok");
    }
    let handler = Arc::new(Scripted {
        delay: Duration::from_millis(50),
        ..Scripted::default()
    });
    let consumer = Arc::new(Consumer::new(queue.clone(), handler, config()));
    let (trigger, shutdown) = shutdown::channel();
    let run = tokio::spawn(consumer.run(shutdown));
    tokio::time::sleep(Duration::from_millis(10)).await;
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        queue.in_flight(),
        0,
        "the received batch was finished and deleted"
    );
    assert_eq!(queue.visible(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_handler_slower_than_the_visibility_timeout_keeps_its_message_invisible() {
    let queue = Arc::new(FakeQueue::new());
    queue.send("ok");
    let handler = Arc::new(Scripted {
        delay: Duration::from_secs(10),
        ..Scripted::default()
    });
    let consumer = Consumer::new(
        queue.clone(),
        handler,
        ConsumerConfig {
            visibility_timeout: Duration::from_secs(3),
            ..config()
        },
    );
    let batch = consumer.process_batch().await.unwrap();
    assert!(matches!(batch, Batch::Processed(r) if r.succeeded == 1));
    let beats = queue.extensions();
    // A beat every second of the ten, each renewing the 3 s timeout.
    assert!(beats.len() >= 9, "{beats:?}");
    assert!(beats
        .iter()
        .all(|(n, t)| *n == 1 && *t == Duration::from_secs(3)));
    assert_eq!(queue.in_flight(), 0);
}

/// Finishes "fast" at once and anything else after ten seconds.
struct FastAndSlow;

impl Handler for FastAndSlow {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandleError> {
        if message.body != "fast" {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_finished_early_stays_invisible_until_its_batch_is_deleted() {
    let queue = Arc::new(FakeQueue::new());
    queue.send("fast");
    queue.send("slow");
    let consumer = Consumer::new(
        queue.clone(),
        Arc::new(FastAndSlow),
        ConsumerConfig {
            visibility_timeout: Duration::from_secs(3),
            ..config()
        },
    );
    let batch = consumer.process_batch().await.unwrap();
    assert!(matches!(batch, Batch::Processed(r) if r.succeeded == 2));
    let beats = queue.extensions();
    assert!(beats.len() >= 9, "{beats:?}");
    assert!(
        beats.iter().all(|(n, _)| *n == 2),
        "the finished message is renewed with the slow one: {beats:?}"
    );
    assert_eq!((queue.in_flight(), queue.visible()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_unstarted_work_and_work_past_the_drain_deadline() {
    let queue = Arc::new(FakeQueue::new());
    for _ in 0..3 {
        queue.send("ok");
    }
    let handler = Arc::new(Scripted {
        delay: Duration::from_secs(60),
        ..Scripted::default()
    });
    let consumer = Arc::new(Consumer::new(
        queue.clone(),
        handler,
        ConsumerConfig {
            concurrency: 1,
            drain_deadline: Duration::from_secs(5),
            ..config()
        },
    ));
    let (trigger, shutdown) = shutdown::channel();
    let run = tokio::spawn(Arc::clone(&consumer).run(shutdown));
    tokio::time::sleep(Duration::from_secs(1)).await;
    trigger.trigger();
    let started = tokio::time::Instant::now();
    run.await.unwrap();
    assert!(
        started.elapsed() <= Duration::from_secs(6),
        "stopped within the deadline"
    );
    assert_eq!(queue.in_flight(), 0);
    assert_eq!(
        queue.visible(),
        3,
        "the running and the waiting messages were all handed back"
    );
}

#[tokio::test]
async fn readiness_follows_the_latest_receive_and_names_why_not() {
    let queue = Arc::new(FakeQueue::new());
    let consumer = Consumer::new(queue.clone(), Arc::new(Scripted::default()), config());
    let health = consumer.health();
    assert_eq!(health.status().unwrap_err(), "no receive has completed yet");

    queue.fail_receives(1);
    assert!(consumer.process_batch().await.is_err());
    let why = health.status().unwrap_err();
    assert!(
        why.contains("sqs:ReceiveMessage") && why.contains("AccessDenied"),
        "{why}"
    );

    // An empty receive is a successful one: the queue answers and the grant holds.
    assert_eq!(consumer.process_batch().await.unwrap(), Batch::Empty);
    assert_eq!(health.status(), Ok(()));
}

/// Notes how long each message (its body: the millisecond it was sent) waited to be handled.
struct Timed {
    start: tokio::time::Instant,
    waits: std::sync::Mutex<Vec<Duration>>,
}

impl Handler for Timed {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandleError> {
        let sent = Duration::from_millis(message.body.parse().unwrap());
        self.waits
            .lock()
            .unwrap()
            .push(self.start.elapsed().saturating_sub(sent));
        Ok(())
    }
}

/// What a run of `count` messages sent every `every` cost: SQS receives and deletes per
/// message, and the median wait from send to handling.
async fn paced_run(every: Duration, count: usize, window: Duration) -> (f64, f64, Duration) {
    let queue = Arc::new(FakeQueue::new().long_polling());
    let start = tokio::time::Instant::now();
    let handler = Arc::new(Timed {
        start,
        waits: Default::default(),
    });
    let config = ConsumerConfig {
        receive_window: window,
        ..ConsumerConfig::new("paced")
    };
    let consumer = Arc::new(Consumer::new(queue.clone(), handler.clone(), config));
    let (trigger, shutdown) = shutdown::channel();
    let run = tokio::spawn(consumer.run(shutdown));
    for _ in 0..count {
        queue.send(start.elapsed().as_millis().to_string());
        tokio::time::sleep(every).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    trigger.trigger();
    run.await.unwrap();
    assert_eq!(
        queue.in_flight() + queue.visible(),
        0,
        "every message deleted"
    );
    let (receives, deletes) = queue.requests();
    let mut waits = handler.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), count);
    waits.sort();
    let per = |n: usize| n as f64 / count as f64;
    println!(
        "every {every:?}, window {window:?}: {:.2} receives and {:.2} deletes per message, \
         median wait {:?}",
        per(receives),
        per(deletes),
        waits[count / 2]
    );
    (per(receives), per(deletes), waits[count / 2])
}

#[tokio::test(start_paused = true)]
async fn receives_gather_batches_only_when_messages_arrive_fast_enough_and_deletes_always_do() {
    let window = imgflow_runtime::consumer::DEFAULT_RECEIVE_WINDOW;
    // 100 messages/s: a poller waits up to the window between receives.
    let (receives, deletes, median) = paced_run(Duration::from_millis(10), 1000, window).await;
    assert!(receives <= 0.25, "{receives} receives per message at 100/s");
    assert!(deletes <= 0.12, "{deletes} deletes per message at 100/s");
    assert!(median <= window, "median wait {median:?} at 100/s");
    // Without a window each long poll returns with the first message.
    let (receives, _, _) = paced_run(Duration::from_millis(10), 1000, Duration::ZERO).await;
    assert!(
        receives >= 0.8,
        "{receives} receives per message without a window"
    );
    // 2 messages/s: no receive waits, so no message does; deletes still share requests.
    let (receives, deletes, median) = paced_run(Duration::from_millis(500), 40, window).await;
    assert!(
        median <= Duration::from_millis(2),
        "median wait {median:?} at 2/s"
    );
    assert!(receives >= 0.9, "{receives} receives per message at 2/s");
    assert!(deletes <= 0.6, "{deletes} deletes per message at 2/s");
}

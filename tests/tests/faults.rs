//! Failure handling, proven by injecting the faults: kills, throttling, slow handlers,
//! duplicate events, poison messages and replays, SIGTERM under load. Detector calls are
//! counted by a counting wrapper (in-process) or the detector call log (across processes).
use std::{collections::HashMap, sync::Arc, time::Duration};

use imgflow_aws::{rekognition::RekognitionDetector, s3::S3Store, sqs::QueueAdmin};
use imgflow_e2e::{free_port, log_dir, photo, send_signal, spawn_worker, Counting, TestPipeline};
use imgflow_local_detector::{default_models_dir, LocalDetector, Models};
use imgflow_messages::ImageStatus;
use imgflow_operations::{
    dlq::{self, ReplayOptions},
    provision::ProvisionSettings,
};
use imgflow_runtime::{
    config::{Stage, COMPLETED_TOPIC},
    fakes::FakeDetector,
    ports::ImageTable,
};
use tokio::process::Child;

const WAIT: Duration = Duration::from_secs(180);
/// Images in the kill test: enough work to outlast the nine kills.
const IMAGES: usize = 100;

fn short_visibility() -> ProvisionSettings {
    ProvisionSettings {
        visibility_timeout: Some(Duration::from_secs(6)),
        ..ProvisionSettings::default()
    }
}

async fn assert_no_dead_letters(p: &TestPipeline) {
    for stage in Stage::ALL {
        let dead = p.dead_letters(stage).await;
        assert!(dead.is_empty(), "{stage} DLQ holds {dead:?}");
    }
}

fn calls_logged(path: &std::path::Path) -> HashMap<String, usize> {
    let mut calls = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        *calls.entry(line.to_owned()).or_default() += 1;
    }
    calls
}

fn dlq(p: &TestPipeline, stage: Stage) -> QueueAdmin {
    QueueAdmin::new(
        p.aws.sqs.clone(),
        p.provisioned.dead_letter_queue_urls[&stage].clone(),
    )
}

async fn wait_for_dead_letters(p: &TestPipeline, stage: Stage, count: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while dlq(p, stage).depth().await.unwrap() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stage} DLQ never reached {count}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether `stage`'s worker has a message in its handler now, from its `/metrics`.
async fn in_flight(http: &reqwest::Client, port: u16, stage: Stage) -> bool {
    let Ok(answer) = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    else {
        return false;
    };
    let text = answer.text().await.unwrap_or_default();
    let series = format!("imgflow_in_flight{{stage=\"{stage}\"}} ");
    text.lines()
        .filter_map(|line| line.strip_prefix(&series))
        .any(|value| value.trim().parse::<f64>().is_ok_and(|n| n > 0.0))
}

/// 1. Each worker is SIGKILLed three times while it has a message in its handler (its
/// in-flight gauge above zero; the label stage right after a detector call begins), and
/// restarted: every image ends labeled with its thumbnail and its completion, one item each,
/// no dead letters, every image announced on `image-completed`, and the detector ran once
/// per image plus once per detector call a kill interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_three_times_each_lose_nothing() {
    let p = TestPipeline::with_settings("e2e-kill", short_visibility()).await;
    let watch = p.subscribe_queue(COMPLETED_TOPIC, "completed-watch").await;
    let logs = log_dir(&p.names.prefix);
    let call_log = logs.join("detector-calls.log");
    std::fs::create_dir_all(&logs).unwrap();
    // One message in work per process, so a kill interrupts at most one detector call.
    let env = [
        ("IMGFLOW_DETECTOR", "fixed".to_owned()),
        ("IMGFLOW_FIXED_LATENCY_MS", "300".to_owned()),
        ("IMGFLOW_VISIBILITY_TIMEOUT_SECS", "6".to_owned()),
        ("IMGFLOW_CONCURRENCY", "1".to_owned()),
        ("IMGFLOW_DETECTOR_CALL_LOG", call_log.display().to_string()),
    ];
    let ports: HashMap<Stage, u16> = Stage::ALL.iter().map(|s| (*s, free_port())).collect();
    let spawn = |stage: Stage| {
        let mut env = env.to_vec();
        env.push((
            "IMGFLOW_METRICS_ADDR",
            format!("127.0.0.1:{}", ports[&stage]),
        ));
        spawn_worker(stage, &p.names.prefix, &logs, &env)
    };
    let mut workers: HashMap<Stage, Child> = Stage::ALL.iter().map(|s| (*s, spawn(*s))).collect();

    let (png, jpg) = (photo("chelsea.png"), photo("rocket.jpg"));
    let kills_done = std::sync::atomic::AtomicBool::new(false);
    // Uploads paced over the kills (and at least IMAGES of them), so every stage has work in
    // flight whenever a kill waits for some.
    let uploads = async {
        let mut ids = Vec::new();
        while ids.len() < IMAGES || !kills_done.load(std::sync::atomic::Ordering::SeqCst) {
            let i = ids.len();
            let (body, ext) = if i % 2 == 0 {
                (&png, "png")
            } else {
                (&jpg, "jpg")
            };
            ids.push(
                p.put(&format!("incoming/kill/{i:03}.{ext}"), body.clone())
                    .await,
            );
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
        ids
    };
    // Nine kills at pseudo-random moments (a fixed seed keeps failures reproducible), each
    // once its worker has a message in hand.
    let kills = async {
        let http = reqwest::Client::new();
        let mut seed: u64 = 0x5eed;
        for round in 0..3 {
            for stage in Stage::ALL {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pause = 200 + (seed >> 33) % 900;
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let deadline = tokio::time::Instant::now() + WAIT;
                if stage == Stage::Label {
                    // Right after a call begins: the kill interrupts a paid call in progress.
                    let before: usize = calls_logged(&call_log).values().sum();
                    while calls_logged(&call_log).values().sum::<usize>() == before {
                        assert!(tokio::time::Instant::now() < deadline, "label stalled");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                } else {
                    while !in_flight(&http, ports[&stage], stage).await {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "{stage} never had work in flight"
                        );
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                let child = workers.get_mut(&stage).unwrap();
                send_signal(child, "KILL");
                child.wait().await.unwrap();
                *child = spawn(stage);
                eprintln!("round {round}: killed {stage} with a message in flight, restarted");
            }
        }
        kills_done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let (ids, ()) = tokio::join!(uploads, kills);

    let records = p.wait_final(&ids, WAIT).await;
    assert!(records.iter().all(|r| r.status == ImageStatus::Labeled));
    let table = p.table();
    imgflow_e2e::until("every image's join", WAIT, || async {
        for id in &ids {
            let item = table.get(id).await.ok()??;
            item.completed_at.as_ref()?;
        }
        Some(())
    })
    .await;
    let items = p.items().await;
    assert_eq!(items.len(), ids.len(), "exactly one item per image");
    assert!(
        items.iter().all(|r| r.thumbnail.is_some()),
        "every image has its thumbnail"
    );
    for (_, mut child) in workers {
        send_signal(&child, "TERM");
        assert!(child.wait().await.unwrap().success());
    }
    assert_no_dead_letters(&p).await;
    let calls = calls_logged(&call_log);
    let total: usize = calls.values().sum();
    assert_eq!(calls.len(), ids.len(), "every image reached the detector");
    assert_eq!(
        total,
        ids.len() + 3,
        "one call per image, and one more for each of the 3 label kills mid-call"
    );
    // Every image announced. A kill between a completion's publish and the write that marks
    // it announced repeats it (at-least-once, as SNS itself is): at most once per kill of the
    // two completing stages.
    let mut announced: HashMap<String, usize> = HashMap::new();
    for event in p.drain_completions(&watch).await {
        *announced.entry(event.image.image_id).or_insert(0) += 1;
    }
    assert!(
        ids.iter().all(|id| announced.contains_key(id)),
        "every image announced"
    );
    let repeats: usize = announced.values().map(|n| n - 1).sum();
    assert!(repeats <= 6, "{repeats} repeated announcements");
    eprintln!("{} images, {repeats} repeated announcements", ids.len());
}

/// 2. A detector that throttles half of its calls for ten seconds: every image labeled,
/// nothing dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_detector_slows_the_stage_but_dead_letters_nothing() {
    let mut p = TestPipeline::new("e2e-throttle").await;
    let detector = Arc::new(FakeDetector::new(vec![]).throttling_half_for(Duration::from_secs(10)));
    p.start_ingest().await;
    p.start_label(detector.clone()).await;
    p.start_store().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            p.put(&format!("incoming/throttle/{i}.png"), photo("chelsea.png"))
                .await,
        );
    }
    let records = p.wait_final(&ids, WAIT).await;
    assert!(records.iter().all(|r| r.status == ImageStatus::Labeled));
    p.wait_idle(WAIT).await;
    let throttled = detector.throttled();
    assert!(throttled >= 5, "the throttle met real work: {throttled}");
    assert_eq!(
        detector.calls() - throttled,
        20,
        "every throttled call was retried, and each image succeeded exactly once"
    );
    assert_no_dead_letters(&p).await;
    p.stop().await;
}

/// 3. A handler three times slower than the visibility timeout: the heartbeat keeps the
/// message hidden, so it is labelled once with one detector call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_three_times_slower_than_the_visibility_timeout_runs_once() {
    let settings = ProvisionSettings {
        visibility_timeout: Some(Duration::from_secs(3)),
        ..ProvisionSettings::default()
    };
    let mut p = TestPipeline::with_settings("e2e-slow", settings).await;
    let detector = Arc::new(FakeDetector::new(vec![]).with_delay(Duration::from_secs(9)));
    p.start_ingest().await;
    p.start_label(detector.clone()).await;
    p.start_store().await;
    let id = p.put("incoming/slow/cat.png", photo("chelsea.png")).await;
    let records = p.wait_final(&[id], WAIT).await;
    assert_eq!(records[0].status, ImageStatus::Labeled);
    p.wait_idle(WAIT).await;
    assert_eq!(detector.calls(), 1);
    assert_no_dead_letters(&p).await;
    p.stop().await;
}

/// 4. Five copies of one S3 event: one detector call, one item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_copies_of_one_event_cost_one_detector_call() {
    let mut p = TestPipeline::new("e2e-five").await;
    let detector = Arc::new(Counting::new(RekognitionDetector::new(
        p.aws.rekognition.clone(),
        p.aws.s3.clone(),
    )));
    let key = "incoming/five/cat.png";
    let id = p.put(key, photo("chelsea.png")).await;
    let event = serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-27T03:40:11.532Z",
        "s3": {"bucket": {"name": p.names.bucket}, "object": {"key": "incoming%2Ffive%2Fcat.png"}}
    }]});
    for _ in 0..4 {
        p.send(Stage::Ingest, &event.to_string()).await;
    }
    p.start_ingest().await;
    p.start_label(detector.clone()).await;
    p.start_store().await;
    let records = p.wait_final(&[id], WAIT).await;
    assert_eq!(records[0].status, ImageStatus::Labeled);
    p.wait_idle(WAIT).await;
    assert_eq!(p.items().await.len(), 1);
    assert_eq!(detector.calls(), 1);
    assert_no_dead_letters(&p).await;
    p.stop().await;
}

/// 5. Poison in every stage lands in its DLQ with the error attributes and `dlq inspect`
/// reports it by reason; an image whose object vanished is replayed after its re-upload and
/// gets labeled; a message that keeps failing stops after `--max-replays`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_inspected_and_replayed_with_a_replay_limit() {
    let mut p = TestPipeline::new("e2e-replay").await;
    let models = Arc::new(Models::load(&default_models_dir()).expect("local models"));
    let detector = LocalDetector::new(Arc::new(S3Store::new(p.aws.s3.clone())), models);

    // The object vanishes between ingest and label.
    p.start_ingest().await;
    let key = "incoming/replay/cat.png";
    let id = p.put(key, photo("chelsea.png")).await;
    let queue = QueueAdmin::new(
        p.aws.sqs.clone(),
        p.provisioned.queue_urls[&Stage::Label].clone(),
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while queue.depth().await.unwrap() < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingest never accepted the image"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.stop().await;
    p.aws
        .s3
        .delete_object()
        .bucket(&p.names.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    p.start_label(detector).await;
    p.start_store().await;
    for stage in Stage::ALL {
        p.send(stage, "{poison").await;
    }
    wait_for_dead_letters(&p, Stage::Label, 2).await;
    wait_for_dead_letters(&p, Stage::Store, 1).await;
    // Ingest is stopped: its poison is still in its queue. Nothing else changes it.
    let missing = p.table().recent(10).await.unwrap();
    assert_eq!(missing[0].status, ImageStatus::Missing);

    let report = dlq::inspect(&dlq(&p, Stage::Label), 100, i64::MAX / 2)
        .await
        .unwrap();
    assert_eq!(report.count, 2, "inspect consumes nothing: {report:?}");
    let classes: Vec<&str> = report
        .by_reason
        .keys()
        .map(|(class, _)| class.as_str())
        .collect();
    assert_eq!(classes, vec!["malformed_message", "object_missing"]);
    assert_eq!(
        dlq(&p, Stage::Label).depth().await.unwrap(),
        2,
        "still there after inspect"
    );

    // The object is back (ingest is not running: the replay is what labels it).
    p.put(key, photo("chelsea.png")).await;
    let source = p.provisioned.queue_urls[&Stage::Label].clone();
    let options = |reason: &str| ReplayOptions {
        dry_run: false,
        max: usize::MAX,
        rate_per_sec: Some(50.0),
        reason: Some(reason.into()),
        max_replays: 3,
    };
    let dry = dlq::replay(
        &dlq(&p, Stage::Label),
        &source,
        &ReplayOptions {
            dry_run: true,
            ..options("")
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((dry.would_move, dry.moved), (2, 0));
    let moved = dlq::replay(
        &dlq(&p, Stage::Label),
        &source,
        &options("object_missing"),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((moved.moved, moved.filtered_out), (1, 1));
    let records = p.wait_final(&[id], WAIT).await;
    // wait_final accepts any final status; the replay must have produced labels.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut record = records[0].clone();
    while record.status != ImageStatus::Labeled {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replayed image not labeled: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        record = p.table().recent(10).await.unwrap().remove(0);
    }
    assert!(record.labels.unwrap().iter().any(|l| l.name == "Cat"));

    // The poison goes back and fails again, three times; the fourth replay refuses.
    for round in 1..=3 {
        let summary = dlq::replay(
            &dlq(&p, Stage::Label),
            &source,
            &options("malformed"),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(summary.moved, 1, "round {round}");
        wait_for_dead_letters(&p, Stage::Label, 1).await;
    }
    let summary = dlq::replay(
        &dlq(&p, Stage::Label),
        &source,
        &options("malformed"),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((summary.moved, summary.over_limit.len()), (0, 1));
    let left = p.dead_letters(Stage::Label).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].attributes["imgflow.replays"], "3");
    assert_eq!(
        left[0].attributes["imgflow.error_class"],
        "malformed_message"
    );
    p.stop().await;
}

/// 6. SIGTERM during a busy run: every worker exits 0 within the drain deadline, no image is
/// lost, none is processed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_in_time_and_repeats_nothing() {
    let p = TestPipeline::with_settings("e2e-drain", short_visibility()).await;
    let logs = log_dir(&p.names.prefix);
    let call_log = logs.join("detector-calls.log");
    std::fs::create_dir_all(&logs).unwrap();
    // A detector slow enough that the signal meets calls in progress, which must finish.
    let env = [
        ("IMGFLOW_DETECTOR", "fixed".to_owned()),
        ("IMGFLOW_FIXED_LATENCY_MS", "2000".to_owned()),
        ("IMGFLOW_VISIBILITY_TIMEOUT_SECS", "6".to_owned()),
        ("IMGFLOW_DRAIN_DEADLINE_SECS", "10".to_owned()),
        ("IMGFLOW_DETECTOR_CALL_LOG", call_log.display().to_string()),
    ];
    let start = || -> Vec<Child> {
        Stage::ALL
            .iter()
            .map(|s| spawn_worker(*s, &p.names.prefix, &logs, &env))
            .collect()
    };
    let mut workers = start();
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            p.put(&format!("incoming/drain/{i}.png"), photo("chelsea.png"))
                .await,
        );
    }
    // The signal goes out right after a call begins, so it meets one with ~2 s to run.
    let before: usize = calls_logged(&call_log).values().sum();
    let deadline = tokio::time::Instant::now() + WAIT;
    while calls_logged(&call_log).values().sum::<usize>() == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no detector call began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for w in &workers {
        send_signal(w, "TERM");
    }
    let signalled = tokio::time::Instant::now();
    for i in 30..40 {
        ids.push(
            p.put(&format!("incoming/drain/{i}.png"), photo("chelsea.png"))
                .await,
        );
    }
    let exit_times = futures::future::join_all(workers.iter_mut().map(|w| async move {
        let status = tokio::time::timeout(Duration::from_secs(30), w.wait())
            .await
            .expect("exits")
            .unwrap();
        assert!(status.success(), "{status}");
        signalled.elapsed()
    }))
    .await;
    eprintln!("workers exited {exit_times:?} after SIGTERM");
    // The README's bound, timed from the signal: the 10 s drain deadline (the last long poll,
    // 1 s here, ends within it), plus a second to release what is left and exit.
    assert!(
        exit_times.iter().all(|t| *t <= Duration::from_secs(11)),
        "{exit_times:?}"
    );
    assert!(
        exit_times[Stage::ALL.iter().position(|s| *s == Stage::Label).unwrap()]
            >= Duration::from_millis(1500),
        "the label worker finished the 2 s detector call in progress (a 1 s long poll \
         alone would not hold it this long): {exit_times:?}"
    );
    let mut workers = start();
    let records = p.wait_final(&ids, WAIT).await;
    assert!(records.iter().all(|r| r.status == ImageStatus::Labeled));
    p.wait_idle(WAIT).await;
    for w in &workers {
        send_signal(w, "TERM");
    }
    for w in &mut workers {
        assert!(w.wait().await.unwrap().success());
    }
    let calls = calls_logged(&call_log);
    assert_eq!(calls.len(), 40);
    assert!(
        calls.values().all(|n| *n == 1),
        "an image was labelled twice: {calls:?}"
    );
    assert_no_dead_letters(&p).await;
}

/// 7. A message that fails on every delivery is moved by the queue's RedrivePolicy after
/// `maxReceiveCount` (5) receives, one detector call each, and `dlq inspect` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_failing_every_time_is_redriven_after_five_receives() {
    let mut p = TestPipeline::new("e2e-redrive").await;
    let detector = Arc::new(
        FakeDetector::new(vec![]).failing_first([imgflow_runtime::PortErrorKind::Retryable; 100]),
    );
    p.start_ingest().await;
    let settings = imgflow_label::LabelSettings {
        attempts: 1,
        ..imgflow_label::LabelSettings::default()
    };
    p.start_label_with(detector.clone(), settings).await;
    let id = p
        .put("incoming/redrive/cat.png", photo("chelsea.png"))
        .await;
    wait_for_dead_letters(&p, Stage::Label, 1).await;
    p.stop().await;
    assert_eq!(detector.calls(), 5, "one call per receive, five receives");
    let report = dlq::inspect(&dlq(&p, Stage::Label), 10, i64::MAX / 2)
        .await
        .unwrap();
    let reasons: Vec<&str> = report.by_reason.keys().map(|(c, _)| c.as_str()).collect();
    assert_eq!(reasons, vec!["redriven (maxReceiveCount reached)"]);
    let item = p.table().get(&id).await.unwrap().unwrap();
    assert_eq!(item.status, ImageStatus::Accepted, "waiting for a replay");
}

/// 8. A versioned bucket (as the template's is): each version is its own image, read by its
/// version id, so an overwrite labels the new picture without losing the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_of_an_object_is_its_own_image_and_versions_end_on_their_own() {
    // Versioned as the stack's bucket is (`imgflow provision` leaves it unversioned).
    let mut p = TestPipeline::new("e2e-versions").await;
    p.versioned().await;
    p.start_all().await;
    let key = "incoming/versions/photo";
    let first = p.put(key, photo("chelsea.png")).await;
    let records = p.wait_final(std::slice::from_ref(&first), WAIT).await;
    let second = p.put(key, photo("rocket.jpg")).await;
    assert_ne!(first, second, "a new version is a new image");
    let records = [
        records,
        p.wait_final(std::slice::from_ref(&second), WAIT).await,
    ]
    .concat();
    assert!(records.iter().all(|r| r.status == ImageStatus::Labeled));
    let table = p.table();
    let status_of = |id: String| {
        let table = table.clone();
        async move { table.get(&id).await.unwrap().map(|r| r.status) }
    };
    // The newer version took the key's place: the first is replaced, out of the gallery.
    imgflow_e2e::until("the first version replaced", WAIT, || async {
        (status_of(first.clone()).await == Some(ImageStatus::Replaced)).then_some(())
    })
    .await;
    // Permanently deleting the noncurrent first version marks only its image. The emulator
    // sends no event for a versioned deletion (moto only notifies when a key's last version
    // goes), so the test sends the one S3 documents, as S3 would.
    let removed = |name: &str, version: &str, sequencer: &str| {
        serde_json::json!({"Records": [{
            "eventName": name, "eventTime": imgflow_runtime::clock::now_rfc3339(),
            "s3": {"bucket": {"name": p.names.bucket}, "object": {
                "key": key, "versionId": version, "sequencer": sequencer}}
        }]})
        .to_string()
    };
    let first_version = records[0].version_id.clone().unwrap();
    p.aws
        .s3
        .delete_object()
        .bucket(&p.names.bucket)
        .key(key)
        .version_id(&first_version)
        .send()
        .await
        .unwrap();
    p.send(
        Stage::Ingest,
        &removed("ObjectRemoved:Delete", &first_version, "0A"),
    )
    .await;
    imgflow_e2e::until("the first version deleted", WAIT, || async {
        (status_of(first.clone()).await == Some(ImageStatus::Deleted)).then_some(())
    })
    .await;
    p.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(status_of(second.clone()).await, Some(ImageStatus::Labeled));
    // A delete marker (its event names the marker's own version): the key's current image
    // is deleted.
    let marker = p
        .aws
        .s3
        .delete_object()
        .bucket(&p.names.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    p.send(
        Stage::Ingest,
        &removed(
            "ObjectRemoved:DeleteMarkerCreated",
            marker.version_id().unwrap(),
            "0B",
        ),
    )
    .await;
    imgflow_e2e::until("the current version deleted", WAIT, || async {
        (status_of(second.clone()).await == Some(ImageStatus::Deleted)).then_some(())
    })
    .await;
    p.stop().await;
    let versions: Vec<_> = records.iter().map(|r| r.version_id.clone()).collect();
    assert!(versions.iter().all(Option::is_some), "{versions:?}");
    assert_ne!(versions[0], versions[1]);
    assert_eq!(
        records
            .iter()
            .map(|r| r.content_type.clone())
            .collect::<Vec<_>>(),
        vec![Some("image/png".into()), Some("image/jpeg".into())],
        "each read its own version's bytes"
    );
}

/// 9. The same S3 event again while its image is being labelled: ingest's second write keeps
/// the label claim, so the duplicate waits for it instead of paying a second detector call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_event_during_labelling_costs_no_second_detector_call() {
    let mut p = TestPipeline::with_settings("e2e-dup-mid", short_visibility()).await;
    let detector = Arc::new(FakeDetector::new(vec![]).with_delay(Duration::from_secs(3)));
    p.start_ingest().await;
    p.start_label(detector.clone()).await;
    p.start_store().await;
    let key = "incoming/dup-mid/cat.png";
    let id = p.put(key, photo("chelsea.png")).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while detector.calls() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no detector call began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let event = serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-27T03:40:11.532Z",
        "s3": {"bucket": {"name": p.names.bucket}, "object": {"key": "incoming%2Fdup-mid%2Fcat.png"}}
    }]});
    p.send(Stage::Ingest, &event.to_string()).await;
    let records = p.wait_final(&[id], WAIT).await;
    assert_eq!(records[0].status, ImageStatus::Labeled);
    p.wait_idle(WAIT).await;
    assert_eq!(detector.calls(), 1, "the duplicate met the live claim");
    assert_no_dead_letters(&p).await;
    p.stop().await;
}

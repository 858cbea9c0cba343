//! Worker processes and signals: SIGTERM mid-run loses nothing and exits 0.
use std::time::Duration;

use imgflow_e2e::{log_dir, photo, send_signal, spawn_worker, TestPipeline};
use imgflow_messages::ImageStatus;
use imgflow_runtime::config::Stage;
use tokio::process::Child;

fn sigterm(child: &Child) {
    send_signal(child, "TERM");
}

async fn terminate_all(workers: &mut [Child]) {
    for w in workers.iter() {
        sigterm(w);
    }
    wait_all_exit_zero(workers).await;
}

async fn wait_all_exit_zero(workers: &mut [Child]) {
    for w in workers.iter_mut() {
        let status = tokio::time::timeout(Duration::from_secs(30), w.wait())
            .await
            .expect("worker exits within 30 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "worker exited with {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_exits_zero_and_a_restart_finishes_every_image() {
    let p = TestPipeline::new("e2e-sigterm").await;
    let logs = log_dir(&p.names.prefix);
    // A fixed one-second detector keeps this test about signals, not model speed, and makes
    // sure the signal meets a call in progress.
    let call_log = logs.join("detector-calls.log");
    std::fs::create_dir_all(&logs).unwrap();
    let env = [
        ("IMGFLOW_DETECTOR", "fixed".to_owned()),
        ("IMGFLOW_FIXED_LATENCY_MS", "1000".to_owned()),
        ("IMGFLOW_DETECTOR_CALL_LOG", call_log.display().to_string()),
    ];
    let calls = || {
        std::fs::read_to_string(&call_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let start = |p: &TestPipeline| -> Vec<Child> {
        Stage::ALL
            .iter()
            .map(|s| spawn_worker(*s, &p.names.prefix, &logs, &env))
            .collect()
    };

    let mut workers = start(&p);
    let mut ids = Vec::new();
    let upload = |i: usize| {
        let (name, ext) = if i.is_multiple_of(2) {
            ("chelsea.png", "png")
        } else {
            ("rocket.jpg", "jpg")
        };
        (format!("incoming/sigterm/{i}.{ext}"), photo(name))
    };
    for i in 0..6 {
        let (key, body) = upload(i);
        ids.push(p.put(&key, body).await);
    }
    // SIGTERM once a detector call is in progress, and keep uploading while the workers
    // drain, so some images are done, some in flight, some not yet received.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while calls().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no detector call began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for w in &workers {
        sigterm(w);
    }
    for i in 6..12 {
        let (key, body) = upload(i);
        ids.push(p.put(&key, body).await);
    }
    wait_all_exit_zero(&mut workers).await;
    let in_flight_at_signal = calls();
    assert!(
        !in_flight_at_signal.is_empty() && in_flight_at_signal.len() < ids.len(),
        "the stop met a call in progress and left work for the restart: {in_flight_at_signal:?}"
    );

    let mut workers = start(&p);
    let records = p.wait_final(&ids, Duration::from_secs(120)).await;
    assert!(
        records.iter().all(|r| r.status == ImageStatus::Labeled),
        "{:?}",
        records
            .iter()
            .map(|r| (&r.key, r.status))
            .collect::<Vec<_>>()
    );
    terminate_all(&mut workers).await;
    let mut all = calls();
    all.sort();
    all.dedup();
    assert_eq!(
        (all.len(), calls().len()),
        (ids.len(), ids.len()),
        "the calls in progress at the signal were finished, not repeated after the restart"
    );
    for stage in Stage::ALL {
        assert!(
            p.dead_letters(stage).await.is_empty(),
            "{stage} DLQ is not empty"
        );
    }
}

/// An idle worker stops within its poll wait (5 s) of SIGTERM, plus two seconds for the
/// process to exit, saying what it waits for; it never abandons the receive under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_stops_within_its_poll_wait_and_says_what_it_waits_for() {
    let p = TestPipeline::new("e2e-idle-stop").await;
    let logs = log_dir(&p.names.prefix);
    let port = imgflow_e2e::free_port();
    // The default poll wait (the tests' processes otherwise poll for 1 s).
    let wait = imgflow_runtime::consumer::DEFAULT_WAIT_TIME;
    let env = [
        ("IMGFLOW_METRICS_ADDR", format!("127.0.0.1:{port}")),
        ("IMGFLOW_WAIT_TIME_SECS", wait.as_secs().to_string()),
    ];
    let mut worker = spawn_worker(Stage::Store, &p.names.prefix, &logs, &env);
    // Running: its first receive has returned.
    let ready = format!("http://127.0.0.1:{port}/readyz");
    imgflow_e2e::until("the worker ready", Duration::from_secs(30), || {
        let ready = ready.clone();
        async move { imgflow_e2e::http_ok(&ready).await.then_some(()) }
    })
    .await;
    // Into the next poll, which then has most of its wait still to run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = tokio::time::Instant::now();
    sigterm(&worker);
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("exits")
        .unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(7),
        "an idle worker took {took:?} to stop"
    );
    let log = std::fs::read_to_string(logs.join("imgflow-store.log")).unwrap();
    assert!(
        log.contains("stopping: no new receives")
            && log.contains("in_flight=0")
            && log.contains(&format!("receive_wait_secs={}", wait.as_secs())),
        "{log}"
    );
}

/// A second process of a stage on one host with the same metrics port refuses to start (it
/// would advertise, and `--healthcheck` would probe, the first one's); port 0 takes a free
/// port and logs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_on_a_taken_metrics_port_refuses_to_start() {
    let p = TestPipeline::new("e2e-two-workers").await;
    let logs = log_dir(&p.names.prefix);
    let port = imgflow_e2e::free_port();
    let taken = [("IMGFLOW_METRICS_ADDR", format!("127.0.0.1:{port}"))];
    let first = spawn_worker(Stage::Store, &p.names.prefix, &logs, &taken);
    let health = format!("http://127.0.0.1:{port}/healthz");
    imgflow_e2e::until("the first worker serving", Duration::from_secs(30), || {
        let health = health.clone();
        async move { imgflow_e2e::http_ok(&health).await.then_some(()) }
    })
    .await;
    let second_logs = logs.join("second");
    let mut second = spawn_worker(Stage::Store, &p.names.prefix, &second_logs, &taken);
    let status = tokio::time::timeout(Duration::from_secs(30), second.wait())
        .await
        .expect("the second worker stops")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let log = std::fs::read_to_string(second_logs.join("imgflow-store.log")).unwrap();
    assert!(
        log.contains(&format!(
            "error: IMGFLOW_METRICS_ADDR=127.0.0.1:{port} cannot be used"
        )) && log.contains("127.0.0.1:0 for any free one"),
        "{log}"
    );

    let any = [("IMGFLOW_METRICS_ADDR", "127.0.0.1:0".to_owned())];
    let third_logs = logs.join("third");
    let third = spawn_worker(Stage::Store, &p.names.prefix, &third_logs, &any);
    let served = imgflow_e2e::until("the third worker's port", Duration::from_secs(30), || {
        let log = std::fs::read_to_string(third_logs.join("imgflow-store.log")).unwrap_or_default();
        std::future::ready(
            log.split("metrics=http://")
                .nth(1)
                .and_then(|rest| rest.split("/metrics").next())
                .map(str::to_owned),
        )
    })
    .await;
    assert_ne!(served, format!("127.0.0.1:{port}"));
    assert!(!served.ends_with(":0"), "{served}");
    assert!(imgflow_e2e::http_ok(&format!("http://{served}/healthz")).await);
    sigterm(&first);
    sigterm(&third);
    wait_all_exit_zero(&mut [first, third]).await;
}

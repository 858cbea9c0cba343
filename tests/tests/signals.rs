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
    // The emulator's Rekognition keeps this test about signals, not about model speed.
    let env = [("IMGFLOW_DETECTOR", "rekognition".to_owned())];
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
    // SIGTERM while the first images are moving through the stages, and keep uploading while
    // the workers drain, so some images are done, some in flight, some not yet received.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for w in &workers {
        sigterm(w);
    }
    for i in 6..12 {
        let (key, body) = upload(i);
        ids.push(p.put(&key, body).await);
    }
    wait_all_exit_zero(&mut workers).await;
    let table = p.table();
    let (before_restart, _) = imgflow_cli::results::wait_for_final(&table, &ids, Duration::ZERO)
        .await
        .unwrap();
    let labeled = before_restart
        .iter()
        .filter(|r| r.status == ImageStatus::Labeled)
        .count();
    assert!(
        labeled < ids.len(),
        "the stop must leave work for the restart"
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
    for stage in Stage::ALL {
        assert!(
            p.dead_letters(stage).await.is_empty(),
            "{stage} DLQ is not empty"
        );
    }
}

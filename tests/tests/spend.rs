//! The detector budget through the real binaries on the emulator: a budget of N calls per
//! window labels N images per window; the rest wait in the queue (never the dead-letter queue)
//! and are labelled once the window turns, by themselves.
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use imgflow_e2e::{log_dir, png_with_dimensions, spawn_stages, stop_all, TestPipeline};
use imgflow_messages::ImageStatus;
use imgflow_runtime::config::Stage;

/// The calls counted in each window of the counter `pk`, as the label stage recorded them.
async fn counted(p: &TestPipeline, pk: &str) -> Vec<u64> {
    let windows = p
        .aws
        .dynamodb
        .query()
        .table_name(&p.names.index_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    windows
        .iter()
        .map(|w| w["used"].as_n().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_of_two_calls_per_window_labels_two_per_window_and_loses_nothing() {
    let p = TestPipeline::new("e2e-budget").await;
    let logs = log_dir(&p.names.prefix);
    std::fs::create_dir_all(&logs).unwrap();
    let calls = logs.join("detector-calls.log");
    let env = [
        ("IMGFLOW_DETECTOR", "fixed".to_owned()),
        ("IMGFLOW_FIXED_LATENCY_MS", "20".to_owned()),
        ("IMGFLOW_DETECTOR_CALL_LOG", calls.display().to_string()),
        ("IMGFLOW_DETECTOR_BUDGET", "2/8s".to_owned()),
    ];
    let mut workers = spawn_stages(&p.names.prefix, &logs, &env);
    let mut ids = Vec::new();
    for n in 0..5u32 {
        // Five different pictures: no copy saves a call here.
        let body = png_with_dimensions(400 + n, 300);
        ids.push(p.put(&format!("incoming/budget/{n}.png"), body).await);
    }
    let records = p.wait_final(&ids, Duration::from_secs(90)).await;
    stop_all(&mut workers).await;
    assert!(records.iter().all(|r| r.status == ImageStatus::Labeled));
    for stage in Stage::ALL {
        assert!(p.dead_letters(stage).await.is_empty(), "{stage}");
    }
    let called = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(called.lines().count(), 5, "{called}");

    // Every window counted at most its budget; together, every call.
    let used = counted(&p, "calls#budget#fixed").await;
    assert!(used.iter().all(|u| *u <= 2), "{used:?}");
    assert_eq!(used.iter().sum::<u64>(), 5, "{used:?}");
    assert!(used.len() >= 3, "five calls at two a window: {used:?}");

    let log = std::fs::read_to_string(logs.join("imgflow-label.log")).unwrap();
    let spent: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("error_code=\"detector_budget_spent\"")
                || l.contains("error_code=detector_budget_spent")
        })
        .filter(|l| l.contains("the detector budget is spent"))
        .collect();
    assert!(!spent.is_empty(), "{log}");
    assert!(spent.iter().all(|l| l.contains(" WARN ")), "{spent:?}");
    assert!(
        log.contains("not receiving: the detector budget is spent"),
        "{log}"
    );
    assert!(log.contains("receiving again"), "{log}");
}

/// Two label processes share one rate: no second counts more calls than the rate, whichever
/// process made them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_label_processes_share_one_rate() {
    let p = TestPipeline::new("e2e-rate").await;
    let logs = log_dir(&p.names.prefix);
    std::fs::create_dir_all(&logs).unwrap();
    let env = [
        ("IMGFLOW_DETECTOR", "fixed".to_owned()),
        ("IMGFLOW_FIXED_LATENCY_MS", "20".to_owned()),
        ("IMGFLOW_DETECTOR_RATE", "2".to_owned()),
    ];
    let mut workers = spawn_stages(&p.names.prefix, &logs, &env);
    workers.push(imgflow_e2e::spawn_worker(
        Stage::Label,
        &p.names.prefix,
        &logs.join("second-label"),
        &env,
    ));
    let mut ids = Vec::new();
    for n in 0..8u32 {
        let body = png_with_dimensions(500 + n, 300);
        ids.push(p.put(&format!("incoming/rate/{n}.png"), body).await);
    }
    let records = p.wait_final(&ids, Duration::from_secs(90)).await;
    stop_all(&mut workers).await;
    assert!(records.iter().all(|r| r.status == ImageStatus::Labeled));
    let used = counted(&p, "calls#rate#fixed").await;
    assert!(used.iter().all(|u| *u <= 2), "{used:?}");
    assert_eq!(used.iter().sum::<u64>(), 8, "{used:?}");
    assert!(used.len() >= 4, "eight calls at two a second: {used:?}");
}

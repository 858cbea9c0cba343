//! Every worker serves /metrics, /healthz and /readyz; the counts match the work done.
use std::time::Duration;

use imgflow_e2e::{free_port, log_dir, photo, send_signal, spawn_worker, TestPipeline};
use imgflow_runtime::config::Stage;

/// The value of the first sample of `name` whose labels include every `k="v"` in `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_when(http: &reqwest::Client, port: u16, ready: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if ready(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never matched:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_report_their_work_in_prometheus_format() {
    let p = TestPipeline::new("e2e-metrics").await;
    let logs = log_dir(&p.names.prefix);
    let ports: Vec<u16> = Stage::ALL.iter().map(|_| free_port()).collect();
    let mut workers: Vec<_> = Stage::ALL
        .iter()
        .zip(&ports)
        .map(|(stage, port)| {
            let env = [
                ("IMGFLOW_DETECTOR", "rekognition".to_owned()),
                ("IMGFLOW_METRICS_ADDR", format!("127.0.0.1:{port}")),
            ];
            spawn_worker(*stage, &p.names.prefix, &logs, &env)
        })
        .collect();
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            p.put(&format!("incoming/metrics/{i}.png"), photo("chelsea.png"))
                .await,
        );
    }
    ids.push(
        p.put("incoming/metrics/notes.png", b"not an image".to_vec())
            .await,
    );
    p.wait_final(&ids, Duration::from_secs(60)).await;

    for port in &ports {
        for path in ["healthz", "readyz"] {
            let status = http
                .get(format!("http://127.0.0.1:{port}/{path}"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "{path} on {port}");
        }
    }
    // The container health check: each binary probes the process its environment names.
    for (stage, port) in Stage::ALL.iter().zip(&ports) {
        let healthcheck = |port: u16| {
            std::process::Command::new(imgflow_e2e::bin_dir().join(format!("imgflow-{stage}")))
                .arg("--healthcheck")
                .env("IMGFLOW_METRICS_ADDR", format!("0.0.0.0:{port}"))
                .output()
                .unwrap()
        };
        let alive = healthcheck(*port);
        assert!(alive.status.success(), "{stage}: {alive:?}");
        let nobody = healthcheck(free_port());
        assert_eq!(nobody.status.code(), Some(1), "{stage}: {nobody:?}");
        assert!(String::from_utf8_lossy(&nobody.stderr).contains("/healthz"));
    }
    let ingest = metrics_when(&http, ports[0], |t| {
        sample(
            t,
            "imgflow_messages_succeeded_total",
            &[r#"stage="ingest""#],
        ) >= Some(6.0)
    })
    .await;
    assert_eq!(
        sample(
            &ingest,
            "imgflow_images_rejected_total",
            &[r#"stage="ingest""#, r#"status="rejected""#]
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &ingest,
            "imgflow_aws_calls_total",
            &[r#"service="DynamoDB""#, r#"operation="UpdateItem""#]
        ) >= Some(6.0),
        "{ingest}"
    );
    // One ranged GET answers what a HEAD would: no HEAD for a non-empty object.
    assert!(
        sample(
            &ingest,
            "imgflow_aws_calls_total",
            &[r#"operation="GetObject""#]
        ) >= Some(6.0)
    );
    assert_eq!(
        sample(
            &ingest,
            "imgflow_aws_calls_total",
            &[r#"operation="HeadObject""#]
        ),
        None,
        "{ingest}"
    );
    assert!(
        sample(
            &ingest,
            "imgflow_handler_duration_seconds_count",
            &[r#"stage="ingest""#]
        ) >= Some(6.0)
    );

    let label = metrics_when(&http, ports[1], |t| {
        sample(t, "imgflow_detector_calls_total", &[r#"outcome="ok""#]) == Some(5.0)
    })
    .await;
    assert_eq!(
        sample(
            &label,
            "imgflow_aws_calls_total",
            &[r#"operation="DetectLabels""#]
        ),
        Some(5.0),
        "one paid call per image"
    );

    let store = metrics_when(&http, ports[2], |t| {
        sample(t, "imgflow_end_to_end_seconds_count", &[]) == Some(5.0)
    })
    .await;
    assert!(sample(&store, "imgflow_end_to_end_seconds_sum", &[]) > Some(0.0));
    assert_eq!(
        sample(&store, "imgflow_in_flight", &[r#"stage="store""#]),
        Some(0.0)
    );

    for w in &workers {
        send_signal(w, "TERM");
    }
    for w in &mut workers {
        assert!(w.wait().await.unwrap().success());
    }
}

//! The pipeline benchmark driver (`scripts/bench pipeline` runs it): provisions a fresh prefix
//! on the emulator, starts one process per stage from `--bin-dir`, submits `--images` photos
//! (steady at `--rate` per second, or as one burst), times each image from upload to the
//! `ImageStored` event, and reads every worker's /metrics and /proc. Writes one JSON report.
use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use imgflow_e2e::{free_port, photo, send_signal, spawn_worker, TestPipeline};
use imgflow_messages::{ImageStored, StageMessage};
use imgflow_runtime::config::Stage;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// Images to submit.
    #[arg(long, default_value_t = 500)]
    images: usize,
    /// `steady` (at --rate) or `burst` (all at once).
    #[arg(long, default_value = "steady")]
    mode: String,
    /// Images per second in steady mode.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// `fixed` (fixed latency, isolates the plumbing) or `local`.
    #[arg(long, default_value = "fixed")]
    detector: String,
    /// Latency of the fixed detector.
    #[arg(long, default_value_t = 50)]
    fixed_latency_ms: u64,
    /// IMGFLOW_RECEIVE_WINDOW_MS for every worker.
    #[arg(long, default_value_t = 50)]
    receive_window_ms: u64,
    /// IMGFLOW_PUBLISH_WINDOW_MS for every worker.
    #[arg(long, default_value_t = 10)]
    publish_window_ms: u64,
    /// Where the worker binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The emulator's pid file, for its CPU time.
    #[arg(long, default_value = "target/emulator/moto.pid")]
    emulator_pid_file: PathBuf,
    /// The report.
    #[arg(long)]
    out: PathBuf,
    /// Leave the thumbnail branch out: its near-duplicate lookups are the emulator's heaviest
    /// load, and a saturated emulator answers in seconds, which changes how the other stages
    /// batch. Images then end stored, never completed.
    #[arg(long)]
    without_thumbnail: bool,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// CPU seconds (user + system) and peak/current RSS in kB of a process.
fn proc_stats(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12; 100 ticks per second.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu, kb("VmHWM:"), kb("VmRSS:"))
}

/// Context switches of a process's threads so far (voluntary: it waited for something, the
/// wake-ups; involuntary: preempted).
fn context_switches(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// `photo` with the comment `text` added (a PNG `tEXt` chunk after `IHDR`, a JPEG `COM`
/// segment after `SOI`): other bytes, the same picture.
fn with_comment(photo: &[u8], text: &str) -> Vec<u8> {
    if photo.starts_with(b"\x89PNG") {
        // Signature (8) and IHDR (4 length + 4 type + 13 data + 4 CRC).
        let (head, rest) = photo.split_at(33);
        let data = [b"Comment\0".as_slice(), text.as_bytes()].concat();
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        let typed = [b"tEXt".as_slice(), &data].concat();
        chunk.extend_from_slice(&typed);
        chunk.extend_from_slice(&crc32fast::hash(&typed).to_be_bytes());
        [head, &chunk, rest].concat()
    } else {
        let (soi, rest) = photo.split_at(2);
        let mut segment = vec![0xFF, 0xFE];
        segment.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
        segment.extend_from_slice(text.as_bytes());
        [soi, &segment, rest].concat()
    }
}

/// `metric{labels} value` lines of one metric, as (labels, value).
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| {
            let (left, value) = l.rsplit_once(' ')?;
            Some((left[name.len()..].to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    std::env::set_var("IMGFLOW_BIN_DIR", &args.bin_dir);
    let p = TestPipeline::new(&format!("bench-{}-{}", args.detector, args.mode)).await;
    // Versioned, as the stack's bucket is.
    p.versioned().await;
    let logs = PathBuf::from("target/bench/logs").join(&p.names.prefix);

    // A queue of our own on the image-stored topic: every ImageStored event, with stored_at.
    let results = p
        .subscribe_queue(Stage::Store.output_topic(), "bench-results")
        .await;

    let stages: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| !(args.without_thumbnail && *s == Stage::Thumbnail))
        .collect();
    let ports: HashMap<Stage, u16> = stages.iter().map(|s| (*s, free_port())).collect();
    let mut workers: HashMap<Stage, tokio::process::Child> = stages
        .iter()
        .map(|stage| {
            let env = [
                ("IMGFLOW_DETECTOR", args.detector.clone()),
                (
                    "IMGFLOW_FIXED_LATENCY_MS",
                    args.fixed_latency_ms.to_string(),
                ),
                (
                    "IMGFLOW_METRICS_ADDR",
                    format!("127.0.0.1:{}", ports[stage]),
                ),
                ("IMGFLOW_WAIT_TIME_SECS", "20".into()),
                (
                    "IMGFLOW_RECEIVE_WINDOW_MS",
                    args.receive_window_ms.to_string(),
                ),
                (
                    "IMGFLOW_PUBLISH_WINDOW_MS",
                    args.publish_window_ms.to_string(),
                ),
                ("RUST_LOG", "warn".into()),
                // As in production: every upload below has bytes of its own, so this costs
                // what finding copies costs a unique picture, and labels each one.
                ("IMGFLOW_REUSE_COPIES", "true".into()),
            ];
            (*stage, spawn_worker(*stage, &p.names.prefix, &logs, &env))
        })
        .collect();
    let http = reqwest::Client::new();
    for &stage in &stages {
        let url = format!("http://127.0.0.1:{}/readyz", ports[&stage]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "{stage} never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let pid = |stage: Stage| workers[&stage].id().unwrap();
    let emulator_pid: Option<u32> = std::fs::read_to_string(&args.emulator_pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let idle: HashMap<Stage, (f64, u64, u64)> =
        stages.iter().map(|s| (*s, proc_stats(pid(*s)))).collect();
    let emulator_before = emulator_pid.map(proc_stats);
    let switches_before: HashMap<Stage, u64> = stages
        .iter()
        .map(|s| (*s, context_switches(pid(*s))))
        .collect();

    // A mix of sizes: 112 KB to 790 KB, JPEG and PNG.
    let photos: Vec<(&str, Vec<u8>)> = ["rocket.jpg", "chelsea.png", "coffee.png", "astronaut.png"]
        .iter()
        .map(|n| (*n, photo(n)))
        .collect();
    let started = now_ms();
    let mut uploaded_at: HashMap<String, f64> = HashMap::new();
    // Every upload a picture of its own bytes (a comment added to the photo), as a catalog of
    // distinct photos is: exact copies would skip the detector and measure something else.
    let uploads: Vec<(String, Vec<u8>)> = (0..args.images)
        .map(|i| {
            let (name, body) = &photos[i % photos.len()];
            let tag = format!("imgflow-bench {i}");
            (
                format!("incoming/bench/{i:05}-{name}"),
                with_comment(body, &tag),
            )
        })
        .collect();
    let upload_task = {
        let store = imgflow_aws::s3::S3Store::new(p.aws.s3.clone());
        let bucket = p.names.bucket.clone();
        let (mode, rate) = (args.mode.clone(), args.rate);
        tokio::spawn(async move {
            use futures::StreamExt;
            use imgflow_runtime::ports::ObjectStore;
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let concurrency = if mode == "burst" { 16 } else { 4 };
            let start = Instant::now();
            futures::stream::iter(uploads.into_iter().enumerate())
                .map(|(i, (key, body))| {
                    let (store, bucket, mode) = (store.clone(), bucket.clone(), mode.clone());
                    async move {
                        if mode != "burst" {
                            tokio::time::sleep_until((start + interval * i as u32).into()).await;
                        }
                        let at = now_ms();
                        store
                            .put(&bucket, &key, body.into(), "application/octet-stream")
                            .await
                            .unwrap();
                        (key, at)
                    }
                })
                .buffer_unordered(concurrency)
                .collect::<Vec<_>>()
                .await
        })
    };

    let mut stored: HashMap<String, f64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored.len() < args.images && Instant::now() < deadline {
        let received = p
            .aws
            .sqs
            .receive_message()
            .queue_url(&results)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let mut handles = Vec::new();
        for m in received.messages.unwrap_or_default() {
            if let Ok(event) = ImageStored::decode(m.body().unwrap_or_default()) {
                let at = chrono::DateTime::parse_from_rfc3339(&event.stored_at)
                    .unwrap()
                    .timestamp_micros() as f64
                    / 1000.0;
                stored.entry(event.image.key.clone()).or_insert(at);
            }
            handles.push(m.receipt_handle.unwrap_or_default());
        }
        for h in handles {
            let _ = p
                .aws
                .sqs
                .delete_message()
                .queue_url(&results)
                .receipt_handle(h)
                .send()
                .await;
        }
    }
    for (key, at) in upload_task.await.unwrap() {
        uploaded_at.insert(key, at);
    }
    let finished = now_ms();

    let mut report_stages = serde_json::Map::new();
    for &stage in &stages {
        let text = http
            .get(format!("http://127.0.0.1:{}/metrics", ports[&stage]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let calls: serde_json::Map<String, Value> = samples(&text, "imgflow_aws_calls_total")
            .into_iter()
            .map(|(labels, v)| (labels, json!(v)))
            .collect();
        let detector_calls: f64 = samples(&text, "imgflow_detector_calls_total")
            .iter()
            .fold(0.0, |sum, (_, v)| sum + v);
        // Time inside handlers (the histogram's sum and count): the rest of an image's
        // latency is spent between stages (event delivery, queues, receives).
        let total = |name: &str| samples(&text, name).iter().fold(0.0, |sum, (_, v)| sum + v);
        let handler_seconds = total("imgflow_handler_duration_seconds_sum");
        let handled = total("imgflow_handler_duration_seconds_count");
        let (cpu_after, peak_kb, _) = proc_stats(pid(stage));
        let (cpu_before, _, idle_kb) = idle[&stage];
        report_stages.insert(
            stage.to_string(),
            json!({
                "aws_calls": calls,
                "detector_calls": detector_calls,
                "handler_seconds": handler_seconds,
                "handled": handled,
                "cpu_seconds": cpu_after - cpu_before,
                "context_switches": context_switches(pid(stage)) - switches_before[&stage],
                "idle_rss_kb": idle_kb,
                "peak_rss_kb": peak_kb,
            }),
        );
    }
    let emulator = match (emulator_pid, emulator_before) {
        (Some(pid), Some((before, _, _))) => json!({ "cpu_seconds": proc_stats(pid).0 - before }),
        _ => Value::Null,
    };
    for w in workers.values() {
        send_signal(w, "TERM");
    }
    for w in workers.values_mut() {
        let _ = w.wait().await;
    }
    let timeline: Vec<Value> = stored
        .iter()
        .filter_map(|(key, done)| {
            let up = uploaded_at.get(key)?;
            Some(json!({ "uploaded_ms": up - started, "stored_ms": done - started, "latency_ms": done - up }))
        })
        .collect();
    let report = json!({
        "images": args.images,
        "completed": stored.len(),
        "mode": args.mode,
        "rate_per_sec": if args.mode == "burst" { Value::Null } else { json!(args.rate) },
        "detector": args.detector,
        "fixed_latency_ms": args.fixed_latency_ms,
        "receive_window_ms": args.receive_window_ms,
        "publish_window_ms": args.publish_window_ms,
        "wall_seconds": (finished - started) / 1000.0,
        "stages": report_stages,
        "emulator": emulator,
        "timeline": timeline,
    });
    std::fs::create_dir_all(args.out.parent().unwrap()).unwrap();
    std::fs::write(&args.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    eprintln!(
        "{} of {} images stored; report in {}",
        stored.len(),
        args.images,
        args.out.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_changes_the_bytes_not_the_picture() {
        for name in ["rocket.jpg", "chelsea.png"] {
            let photo = photo(name);
            let tagged = with_comment(&photo, "imgflow-bench 7");
            assert_ne!(tagged, photo);
            let (a, b) = (
                image::load_from_memory(&photo),
                image::load_from_memory(&tagged),
            );
            assert_eq!(a.unwrap().to_rgb8(), b.unwrap().to_rgb8(), "{name}");
        }
    }
}

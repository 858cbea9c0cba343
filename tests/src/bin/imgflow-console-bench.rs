//! The web console's benchmark (`scripts/bench console`): seeds `--images` labeled items on the
//! emulator through the store stage's own writes, serves the API in-process, and times each
//! page and query: latency percentiles and AWS requests per HTTP request, next to what a table
//! scan of the same items costs. Writes JSON to stdout.
use std::{collections::BTreeMap, sync::Arc, time::Instant};

use clap::Parser;
use futures::StreamExt;
use imgflow_api::{pipeline::PipelineProbe, router, ApiState};
use imgflow_aws::s3::S3Store;
use imgflow_e2e::{photo, TestPipeline};
use imgflow_imaging::probe::Limits;
use imgflow_messages::{
    BoundingBox, ImageLabeled, ImageRecord, ImageRef, ImageStatus, Instance, Label, NamedRef,
    SCHEMA_VERSION,
};
use imgflow_runtime::{clock, observability, ports::ImageTable};
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// Labeled items to seed.
    #[arg(long, default_value_t = 2000)]
    images: usize,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 40)]
    requests: usize,
}

/// (label, parents): every item gets two of these.
const VOCABULARY: &[(&str, &[&str])] = &[
    ("Cat", &["Animal", "Pet", "Mammal"]),
    ("Dog", &["Animal", "Pet", "Mammal"]),
    ("Horse", &["Animal", "Mammal"]),
    ("Car", &["Vehicle", "Transportation"]),
    ("Bicycle", &["Vehicle", "Transportation"]),
    ("Person", &[]),
    ("Tree", &["Plant"]),
    ("Coffee", &["Beverage", "Food"]),
    ("Kite", &["Toy"]),
    ("Giraffe", &["Animal", "Mammal", "Wildlife"]),
];

fn label((name, parents): (&str, &[&str]), confidence: f32) -> Label {
    Label {
        name: name.into(),
        confidence,
        instances: vec![Instance {
            bounding_box: BoundingBox {
                width: 0.4,
                height: 0.5,
                left: 0.1,
                top: 0.2,
            },
            confidence,
        }],
        parents: parents.iter().map(|p| NamedRef::new(*p)).collect(),
        categories: vec![],
    }
}

/// `imgflow_aws_calls_total` by operation, from the Prometheus text.
fn aws_calls(metrics: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("imgflow_aws_calls_total{"))
        .filter_map(|l| {
            let operation = l.split("operation=\"").nth(1)?.split('"').next()?;
            let value: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((operation.to_owned(), value))
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let metrics = observability::install().expect("metrics recorder");
    let p = TestPipeline::new("bench-console").await;
    let p = Arc::new(p);

    // One real photo behind every item, so thumbnails and pages decode real bytes.
    let key = "incoming/bench/rocket.jpg";
    let etag = p.put(key, photo("rocket.jpg")).await;
    eprintln!("seeding {} labeled items", args.images);
    let seeded = Instant::now();
    futures::stream::iter(0..args.images)
        .for_each_concurrent(16, |n| {
            let (p, bucket) = (p.clone(), p.names.bucket.clone());
            let etag = etag.clone();
            async move {
                let id = format!("{n:032x}");
                let received_at = clock::now_rfc3339();
                let mut record = ImageRecord::new(
                    id.clone(),
                    bucket.clone(),
                    key.into(),
                    etag.clone(),
                    received_at.clone(),
                    ImageStatus::Accepted,
                );
                record.content_type = Some("image/jpeg".into());
                p.table().write_verdict(&record).await.unwrap();
                let labeled = ImageLabeled {
                    schema_version: SCHEMA_VERSION,
                    image: ImageRef {
                        image_id: id,
                        trace_id: "bench".into(),
                        bucket,
                        key: key.into(),
                        version_id: None,
                        etag,
                        received_at,
                    },
                    labels: vec![
                        label(VOCABULARY[n % VOCABULARY.len()], 95.0),
                        label(VOCABULARY[(n / 3 + 1) % VOCABULARY.len()], 70.0),
                    ],
                    detector: "bench".into(),
                    label_model_version: "1".into(),
                    labeled_at: clock::now_rfc3339(),
                    duplicate_of: None,
                };
                p.store_labels(&labeled).await;
            }
        })
        .await;
    let seed_secs = seeded.elapsed().as_secs_f64();

    let mut state = ApiState::new(
        S3Store::new(p.aws.s3.clone()),
        p.table(),
        p.catalog(),
        p.names.bucket.clone(),
        "incoming/api/".into(),
        Limits::default(),
    );
    state.pipeline = Some(PipelineProbe::new(p.aws.clone(), p.names.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(Arc::new(state))).await });
    let http = reqwest::Client::new();

    let second_page = {
        let first: serde_json::Value = http
            .get(format!("{base}/images?limit=24"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        first["next"].as_str().unwrap_or_default().to_owned()
    };
    let html = "text/html";
    let endpoints: Vec<(&str, String, &str)> = vec![
        ("gallery page (HTML, 24)", "/images".into(), html),
        (
            "gallery page 2 (JSON, 24)",
            format!("/images?limit=24&cursor={second_page}"),
            "application/json",
        ),
        (
            "status filter (HTML)",
            "/images?status=labeled".into(),
            html,
        ),
        (
            "label search by parent (JSON, 24)",
            "/images?label=animal&limit=24".into(),
            "application/json",
        ),
        ("image page (HTML)", format!("/images/{:032x}", 7), html),
        (
            "pipeline (JSON)",
            "/api/pipeline".into(),
            "application/json",
        ),
        (
            "thumbnail (rocket.jpg, 1.1 MP)",
            format!("/images/{:032x}/thumbnail", 7),
            "image/*",
        ),
    ];
    let mut results = Vec::new();
    for (name, path, accept) in endpoints {
        let before = aws_calls(&metrics.render());
        let mut millis = Vec::new();
        for _ in 0..args.requests {
            let start = Instant::now();
            let response = http
                .get(format!("{base}{path}"))
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{name}: {}",
                response.status()
            );
            response.bytes().await.unwrap();
            millis.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let after = aws_calls(&metrics.render());
        let per_request: BTreeMap<String, f64> = after
            .iter()
            .map(|(op, n)| {
                (
                    op.clone(),
                    (n - before.get(op).unwrap_or(&0.0)) / args.requests as f64,
                )
            })
            .filter(|(_, n)| *n > 0.0)
            .collect();
        millis.sort_by(f64::total_cmp);
        results.push(json!({
            "endpoint": name,
            "p50_ms": percentile(&millis, 0.5),
            "p95_ms": percentile(&millis, 0.95),
            "aws_calls_per_request": per_request,
        }));
        eprintln!("{name}: p50 {:.1} ms", percentile(&millis, 0.5));
    }

    // What search would cost without the index: a scan of every item.
    let start = Instant::now();
    let all = p.table().recent(usize::MAX).await.unwrap();
    let scan_ms = start.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "images": args.images,
            "requests_per_endpoint": args.requests,
            "seed_seconds": seed_secs,
            "endpoints": results,
            "full_scan": {"items": all.len(), "ms": scan_ms},
        }))
        .unwrap()
    );
}

//! Peak memory of streaming an S3 Inventory data file, in a process of its own so the peak is
//! this test's. `IMGFLOW_INVENTORY_TEST_MB` sets the inflated size (default 128; the README's
//! figure is for 1024).
use bytes::Bytes;
use imgflow_operations::backfill::inventory::{decode_rows, parse_manifest, CHUNK_BYTES};
use tokio::sync::mpsc;

/// VmHWM: the process's peak resident memory, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_file_is_streamed_in_bounded_memory_whatever_its_size() {
    use std::io::Write;
    let megabytes: usize = std::env::var("IMGFLOW_INVENTORY_TEST_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let manifest = parse_manifest(
        r#"{"sourceBucket": "b", "destinationBucket": "arn:aws:s3:::inv", "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, Size, ETag", "files": []}"#,
        "b",
    )
    .unwrap();
    let row = b"\"b\",\"incoming/photos/2026/12/07/camera-0001/IMG_000001.jpg\",\"123456\",\"0123456789abcdef0123456789abcdef\"\n";
    let rows = megabytes * 1024 * 1024 / row.len();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for _ in 0..rows {
        encoder.write_all(row).unwrap();
    }
    let gzip = encoder.finish().unwrap();
    let before = peak_rss();

    let (tx, rx) = mpsc::channel(2);
    let objects = decode_rows(rx, manifest.schema, "inventory".into());
    let feeder = tokio::spawn(async move {
        for chunk in gzip.chunks(CHUNK_BYTES as usize) {
            tx.send(Ok(Bytes::copy_from_slice(chunk))).await.unwrap();
        }
    });
    let mut objects = objects;
    let mut count = 0usize;
    while let Some(object) = objects.recv().await {
        object.unwrap();
        count += 1;
    }
    feeder.await.unwrap();
    let grown = peak_rss().saturating_sub(before);
    println!(
        "inventory: {megabytes} MB inflated, {count} rows, peak RSS grew {:.1} MB",
        grown as f64 / 1e6
    );
    assert_eq!(count, rows);
    assert!(grown < 64 * 1024 * 1024, "peak RSS grew {grown} bytes");
}

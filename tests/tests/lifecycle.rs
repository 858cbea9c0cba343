//! An image's life beyond one upload, on the emulator: objects from before the pipeline
//! (`imgflow backfill`), a catalog labelled again by another detector (`imgflow relabel`), and
//! deletions in either order.
use std::{process::Command, sync::Arc, time::Duration};

use imgflow_catalog::ports::{ImageCatalog, ImageQuery};
use imgflow_e2e::{bin_dir, png_with_dimensions, until, Counting, TestPipeline};
use imgflow_messages::{ImageStatus, Label, NamedRef};
use imgflow_runtime::{config::Stage, fakes::FakeDetector, ports::ImageTable};

/// Runs `imgflow` against the pipeline's resources; returns stdout, asserting success.
fn imgflow(p: &TestPipeline, args: &[&str]) -> String {
    let out = Command::new(bin_dir().join("imgflow"))
        .args(["--prefix", &p.names.prefix])
        .args(args)
        .envs(imgflow_e2e::process_env(&p.names.prefix))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "imgflow {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn cat() -> Label {
    Label {
        name: "Cat".into(),
        confidence: 95.0,
        instances: vec![],
        parents: vec![NamedRef::new("Animal")],
        categories: vec![],
    }
}

async fn status_of(p: &TestPipeline, id: &str) -> Option<ImageStatus> {
    p.table().get(id).await.unwrap().map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_from_before_the_pipeline_end_labeled_after_one_backfill() {
    let mut p = TestPipeline::new("e2e-backfill").await;
    p.without_notifications().await;
    let mut ids = Vec::new();
    for i in 0..12u32 {
        let key = format!("incoming/old/{i:02}.png");
        ids.push(p.put(&key, png_with_dimensions(100 + i, 100)).await);
    }
    // Three exact copies of the first picture, under keys of their own.
    for i in 0..3 {
        let key = format!("incoming/old/copies/{i}.png");
        ids.push(p.put(&key, png_with_dimensions(100, 100)).await);
    }
    let detector = Arc::new(Counting::new(FakeDetector::new(vec![cat()])));
    p.start_ingest().await;
    p.start_label_reusing_copies(detector.clone()).await;
    p.start_store().await;

    let dry = imgflow(
        &p,
        &[
            "backfill",
            "--dry-run",
            "--start-after",
            "incoming/old/05.png",
        ],
    );
    let mut lines = dry.lines();
    // 06 to 11 and the copies, two of which are copies of the first listed.
    assert_eq!(
        lines.next().unwrap(),
        "listed 9, skipped 0 (already final), would enqueue 9, 2 of them likely exact copies"
    );
    lines.next();
    // The spend preview: the calls, their price, the time at the default quotas.
    let preview = lines.next().unwrap();
    assert!(
        preview.starts_with("at most 7 detector call(s): $0.01 with Rekognition")
            && preview.contains("about 1 s at Rekognition's default quota of 50/s"),
        "{preview}"
    );
    let dry = imgflow(
        &p,
        &[
            "backfill",
            "--dry-run",
            "--key-prefix",
            "old/1",
            "--rate",
            "0.5",
        ],
    );
    assert_eq!(
        dry.lines().next().unwrap(),
        "listed 2, skipped 0 (already final), would enqueue 2"
    );
    assert!(dry.contains("about 4 s at --rate 0.5/s"), "{dry}");

    // The whole bucket: the preview counts the copies out of the calls...
    let dry = imgflow(&p, &["backfill", "--dry-run"]);
    let mut lines = dry.lines();
    assert_eq!(
        lines.next().unwrap(),
        "listed 15, skipped 0 (already final), would enqueue 15, 3 of them likely exact copies"
    );
    assert!(lines
        .next()
        .unwrap()
        .starts_with("3 of them have the ETag and size of another"));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("at most 12 detector call(s)"),
        "{dry}"
    );
    // ...and the run makes just those calls.
    let run = imgflow(&p, &["backfill", "--rate", "100"]);
    assert_eq!(
        run.lines().next().unwrap(),
        "listed 15, skipped 0 (already final), enqueued 15"
    );
    assert!(run.contains("imgflow status"), "{run}");
    let records = p.wait_final(&ids, Duration::from_secs(60)).await;
    assert!(records.iter().all(|r| r.status == ImageStatus::Labeled));
    p.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(detector.calls(), 12);
    assert_eq!(
        records.iter().filter(|r| r.duplicate_of.is_some()).count(),
        3
    );

    let again = imgflow(&p, &["backfill"]);
    assert_eq!(
        again.lines().next().unwrap(),
        "listed 15, skipped 15 (already final), enqueued 0"
    );
    p.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(
        detector.calls(),
        12,
        "a second backfill costs no detector call"
    );

    // The same from an S3 Inventory report, with one object more since the last backfill.
    let late = p
        .put("incoming/old/late.png", png_with_dimensions(300, 100))
        .await;
    let manifest = inventory_report(&p).await;
    let from_report = imgflow(&p, &["backfill", "--inventory", manifest.to_str().unwrap()]);
    assert_eq!(
        from_report.lines().next().unwrap(),
        "listed 16, skipped 15 (already final), enqueued 1"
    );
    p.wait_final(&[late], Duration::from_secs(60)).await;
    assert_eq!(detector.calls(), 13);
    std::fs::remove_file(manifest).unwrap();
    p.stop().await;
}

/// Writes an S3 Inventory report of the image bucket as S3 would: gzip CSV rows (keys
/// URL-encoded; plus a noncurrent version and a key outside the prefix, which backfill must
/// leave) in a destination bucket, and the manifest, returned as a local file.
async fn inventory_report(p: &TestPipeline) -> std::path::PathBuf {
    use std::io::Write;
    let listing = p
        .aws
        .s3
        .list_objects_v2()
        .bucket(&p.names.bucket)
        .send()
        .await
        .unwrap();
    let mut csv = String::new();
    for o in listing.contents() {
        let key = o.key().unwrap().replace('/', "%2F");
        let etag = o.e_tag().unwrap().trim_matches('"');
        csv.push_str(&format!(
            "\"{}\",\"{key}\",\"\",\"true\",\"false\",\"{}\",\"2026-11-01T00:00:00.000Z\",\"{etag}\"\n",
            p.names.bucket,
            o.size().unwrap()
        ));
    }
    csv.push_str(&format!(
        "\"{0}\",\"incoming%2Fold%2F00.png\",\"v0\",\"false\",\"false\",\"1\",\"t\",\"e\"\n\"{0}\",\"elsewhere%2Fx.png\",\"\",\"true\",\"false\",\"1\",\"t\",\"e\"\n",
        p.names.bucket
    ));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv.as_bytes()).unwrap();
    let data = gz.finish().unwrap();
    let destination = format!("{}-inventory", p.names.prefix);
    p.aws
        .s3
        .create_bucket()
        .bucket(&destination)
        .send()
        .await
        .unwrap();
    p.aws
        .s3
        .put_object()
        .bucket(&destination)
        .key("report/data/1.csv.gz")
        .body(data.clone().into())
        .send()
        .await
        .unwrap();
    let manifest = serde_json::json!({
        "sourceBucket": p.names.bucket,
        "destinationBucket": format!("arn:aws:s3:::{destination}"),
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag",
        "files": [{"key": "report/data/1.csv.gz", "size": data.len(), "MD5checksum": "-"}]
    });
    let path = std::env::temp_dir().join(format!("{}-manifest.json", p.names.prefix));
    std::fs::write(&path, manifest.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relabel_with_another_detector_replaces_labels_and_their_index_entries() {
    let mut p = TestPipeline::new("e2e-relabel").await;
    // Labelled first as the local detector would (its name), then by Rekognition.
    let first = Arc::new(Counting::new(FakeDetector::new(vec![cat()]).named("local")));
    p.start_ingest().await;
    p.start_label(first.clone()).await;
    p.start_store().await;
    let mut ids = Vec::new();
    for i in 0..20u32 {
        let key = format!("incoming/relabel/{i:02}.png");
        ids.push(p.put(&key, png_with_dimensions(100 + i, 100)).await);
    }
    p.wait_final(&ids, Duration::from_secs(60)).await;
    p.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(first.calls(), 20);
    let cats = p
        .index()
        .images_with_label("animal", None, 100)
        .await
        .unwrap();
    assert_eq!(cats.hits.len(), 20);
    p.stop().await;

    // The label stage now runs another detector (the emulator's Rekognition).
    let second = p.start_all().await;
    let dry = imgflow(&p, &["relabel", "--detector", "local", "--dry-run"]);
    assert!(dry.starts_with("read 20, would relabel 20"), "{dry}");
    assert!(
        dry.contains("\n20 detector call(s): $0.02 with Rekognition"),
        "{dry}"
    );
    assert_eq!(second.calls(), 0);
    let run = imgflow(&p, &["relabel", "--detector", "local", "--label", "cat"]);
    assert!(run.starts_with("read 20, sent for relabelling 20"), "{run}");
    until(
        "every image relabelled",
        Duration::from_secs(60),
        || async {
            let records = p.items().await;
            records
                .iter()
                .all(|r| r.detector.as_deref() == Some("rekognition"))
                .then_some(())
        },
    )
    .await;
    p.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(second.calls(), 20, "one detector call per image");
    let cats = p
        .index()
        .images_with_label("animal", None, 100)
        .await
        .unwrap();
    assert!(cats.hits.is_empty(), "old labels' entries gone: {cats:?}");
    let phones = p
        .index()
        .images_with_label("phone", None, 100)
        .await
        .unwrap();
    assert_eq!(phones.hits.len(), 20);
    let again = imgflow(&p, &["relabel", "--detector", "local"]);
    assert!(
        again.starts_with("read 20, sent for relabelling 0"),
        "{again}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_object_leaves_the_gallery_and_the_label_index() {
    let mut p = TestPipeline::new("e2e-delete").await;
    let detector = Arc::new(Counting::new(FakeDetector::new(vec![cat()])));
    p.start_ingest().await;
    p.start_label(detector.clone()).await;
    p.start_store().await;
    let id = p
        .put("incoming/gone.png", png_with_dimensions(120, 100))
        .await;
    let kept = p
        .put("incoming/kept.png", png_with_dimensions(121, 100))
        .await;
    p.wait_final(&[id.clone(), kept.clone()], Duration::from_secs(60))
        .await;

    // The emulator's own ObjectRemoved:Delete event (it carries no sequencer).
    p.aws
        .s3
        .delete_object()
        .bucket(&p.names.bucket)
        .key("incoming/gone.png")
        .send()
        .await
        .unwrap();
    until(
        "the image marked deleted",
        Duration::from_secs(30),
        || async { (status_of(&p, &id).await == Some(ImageStatus::Deleted)).then_some(()) },
    )
    .await;
    let cats = p.index().images_with_label("cat", None, 100).await.unwrap();
    assert_eq!(
        cats.hits.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>(),
        vec![kept.clone()]
    );
    let gallery = p
        .catalog()
        .list(&ImageQuery {
            limit: 10,
            ..ImageQuery::default()
        })
        .await
        .unwrap();
    let shown: Vec<&str> = gallery.images.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(shown, vec![kept.as_str()]);
    p.stop().await;
}

/// S3 does not promise order: a deletion may reach ingest before the creation it follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_end_right_in_either_order() {
    let mut p = TestPipeline::new("e2e-delete-order").await;
    p.without_notifications().await;
    let detector = Arc::new(Counting::new(FakeDetector::new(vec![cat()])));
    p.start_ingest().await;
    p.start_label(detector.clone()).await;
    p.start_store().await;
    let event = |name: &str, key: &str, etag: Option<&str>, sequencer: &str| {
        let mut object = serde_json::json!({"key": key, "sequencer": sequencer});
        if let Some(etag) = etag {
            object["eTag"] = etag.into();
        }
        serde_json::json!({"Records": [{
            "eventName": name, "eventTime": "2026-11-27T00:00:00.000Z",
            "s3": {"bucket": {"name": p.names.bucket}, "object": object}
        }]})
        .to_string()
    };
    let in_order = p
        .put("incoming/in-order.png", png_with_dimensions(130, 100))
        .await;
    let reversed = p
        .put("incoming/reversed.png", png_with_dimensions(131, 100))
        .await;
    let head = |key: &'static str| {
        let s3 = p.aws.s3.clone();
        let bucket = p.names.bucket.clone();
        async move {
            let head = s3
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            head.e_tag().unwrap().trim_matches('"').to_owned()
        }
    };
    let in_order_etag = head("incoming/in-order.png").await;
    let reversed_etag = head("incoming/reversed.png").await;

    // Creation, then deletion.
    p.send(
        Stage::Ingest,
        &event(
            "ObjectCreated:Put",
            "incoming/in-order.png",
            Some(&in_order_etag),
            "0A",
        ),
    )
    .await;
    p.wait_final(std::slice::from_ref(&in_order), Duration::from_secs(60))
        .await;
    p.send(
        Stage::Ingest,
        &event("ObjectRemoved:Delete", "incoming/in-order.png", None, "0B"),
    )
    .await;

    // Deletion first (a later sequencer), then its creation.
    p.send(
        Stage::Ingest,
        &event(
            "ObjectRemoved:Delete",
            "incoming/reversed.png",
            None,
            "0055AED6DCD90281E6",
        ),
    )
    .await;
    p.wait_idle(Duration::from_secs(30)).await;
    p.send(
        Stage::Ingest,
        &event(
            "ObjectCreated:Put",
            "incoming/reversed.png",
            Some(&reversed_etag),
            "0055AED6DCD90281E5",
        ),
    )
    .await;
    for id in [&in_order, &reversed] {
        until("both images deleted", Duration::from_secs(30), || async {
            (status_of(&p, id).await == Some(ImageStatus::Deleted)).then_some(())
        })
        .await;
    }
    p.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(
        detector.calls(),
        1,
        "only the image created before its deletion was labelled"
    );
    let cats = p.index().images_with_label("cat", None, 100).await.unwrap();
    assert!(cats.hits.is_empty(), "{cats:?}");
    p.stop().await;
}

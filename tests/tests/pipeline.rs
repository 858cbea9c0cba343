//! The pipeline end to end on the emulator: S3 → ingest → label → store → DynamoDB.
use std::{sync::Arc, time::Duration};

use base64::Engine;
use imgflow_e2e::{photo, png_with_dimensions, TestPipeline};
use imgflow_imaging::probe::Limits;
use imgflow_messages::{ImageAccepted, ImageRef, ImageStatus, StageMessage};
use imgflow_runtime::{config::Stage, fakes::FakeDetector, PortErrorKind};

const WAIT: Duration = Duration::from_secs(90);

async fn assert_no_dead_letters(p: &TestPipeline) {
    for stage in Stage::ALL {
        let dead = p.dead_letters(stage).await;
        assert!(dead.is_empty(), "{stage} DLQ holds {dead:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_images_with_awkward_keys_are_all_labeled() {
    let mut p = TestPipeline::new("e2e-keys").await;
    let detector = p.start_all().await;
    let (png, jpg) = (photo("chelsea.png"), photo("rocket.jpg"));
    let mut keys = Vec::new();
    for i in 0..5 {
        keys.push((
            format!("incoming/holiday 2024/beach photo {i}.png"),
            png.clone(),
        ));
        keys.push((
            format!("incoming/c++ & friends/{i}+{i}=sum.jpg"),
            jpg.clone(),
        ));
        keys.push((format!("incoming/ünïcödé/日本語/写真 {i}.png"), png.clone()));
        keys.push((
            format!("incoming/a/b/c/d/e/{i} (copy) 100%.jpg"),
            jpg.clone(),
        ));
    }
    let mut ids = Vec::new();
    for (key, body) in &keys {
        ids.push(p.put(key, body.clone()).await);
    }
    let records = p.wait_final(&ids, WAIT).await;
    assert_eq!(records.len(), 20);
    for ((key, _), record) in keys.iter().zip(&records) {
        assert_eq!(&record.key, key);
        assert_eq!(
            record.status,
            ImageStatus::Labeled,
            "{key}: {:?}",
            record.reason
        );
        assert!(
            !record.labels.as_deref().unwrap_or_default().is_empty(),
            "{key} has no labels"
        );
        assert_eq!(record.detector.as_deref(), Some("rekognition"));
        assert!(record.labeled_at.as_deref() > record.accepted_at.as_deref());
    }
    assert_eq!(detector.calls(), 20);
    assert_no_dead_letters(&p).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_uploads_and_events_make_one_item_labeled_once() {
    let mut p = TestPipeline::new("e2e-dups").await;
    let detector = p.start_all().await;
    let key = "incoming/dup/cat photo.png";
    let first = p.put(key, photo("chelsea.png")).await;
    let second = p.put(key, photo("chelsea.png")).await;
    assert_eq!(first, second, "identical content at one key is one image");
    // A duplicated S3 event, as S3 may deliver one (keys form-URL-encoded).
    let etag = p.items().await.first().map(|r| r.etag.clone());
    let event = serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-27T03:40:11.532Z",
        "s3": {"bucket": {"name": p.names.bucket}, "object": {"key": "incoming%2Fdup%2Fcat+photo.png", "eTag": etag}}
    }]});
    p.send(Stage::Ingest, &event.to_string()).await;

    p.wait_final(std::slice::from_ref(&first), WAIT).await;
    p.wait_idle(WAIT).await;
    let items = p.items().await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].status, ImageStatus::Labeled);
    assert_eq!(detector.calls(), 1, "the detector was called once");
    assert_no_dead_letters(&p).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_files_are_rejected_with_reasons_and_nothing_is_dead_lettered() {
    let mut p = TestPipeline::new("e2e-bad").await;
    let detector = p.start_all().await;
    let mut truncated = photo("rocket.jpg");
    truncated.truncate(truncated.len() / 2);
    let cases = [
        (
            "incoming/bad/notes.png",
            b"these are my notes, not a picture\n".to_vec(),
            "text",
        ),
        ("incoming/bad/empty.png", Vec::new(), "empty"),
        ("incoming/bad/cut.jpg", truncated, "truncated"),
        (
            "incoming/bad/strip.png",
            png_with_dimensions(12_000, 50),
            "12000×50",
        ),
    ];
    let mut ids = Vec::new();
    for (key, body, _) in &cases {
        ids.push(p.put(key, body.clone()).await);
    }
    let records = p.wait_final(&ids, WAIT).await;
    for ((key, _, expected), record) in cases.iter().zip(&records) {
        assert_eq!(record.status, ImageStatus::Rejected, "{key}");
        let reason = record.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains(expected),
            "{key}: {reason:?} should mention {expected:?}"
        );
    }
    p.wait_idle(WAIT).await;
    assert_eq!(detector.calls(), 0);
    assert_no_dead_letters(&p).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_land_in_their_stage_dlq_while_images_keep_flowing() {
    let mut p = TestPipeline::new("e2e-poison").await;
    p.start_all().await;
    p.send(Stage::Ingest, "{not json").await;
    p.send(Stage::Label, "{not json").await;
    let newer = ImageAccepted {
        schema_version: 99,
        image: ImageRef {
            image_id: "x".into(),
            trace_id: "t".into(),
            bucket: p.names.bucket.clone(),
            key: "incoming/x.png".into(),
            version_id: None,
            etag: "e".into(),
            received_at: "2026-11-27T00:00:00.000000Z".into(),
        },
        content_type: "image/png".into(),
        size: 1,
        width: 100,
        height: 100,
        accepted_at: "2026-11-27T00:00:00.000000Z".into(),
        relabel: None,
        content_md5: None,
    };
    p.send(Stage::Label, &newer.encode()).await;
    p.send(Stage::Store, r#"{"schema_version": 1, "image_id": 42}"#)
        .await;
    let ids = vec![
        p.put("incoming/ok/one.png", photo("chelsea.png")).await,
        p.put("incoming/ok/two.jpg", photo("rocket.jpg")).await,
    ];
    let records = p.wait_final(&ids, WAIT).await;
    assert!(records.iter().all(|r| r.status == ImageStatus::Labeled));
    p.wait_idle(WAIT).await;

    let expected = [
        (Stage::Ingest, vec!["malformed_event"]),
        (
            Stage::Label,
            vec!["malformed_message", "unsupported_schema"],
        ),
        (Stage::Store, vec!["malformed_message"]),
    ];
    for (stage, classes) in expected {
        let dead = p.dead_letters(stage).await;
        let mut found: Vec<&str> = dead
            .iter()
            .map(|d| d.attributes["imgflow.error_class"].as_str())
            .collect();
        found.sort();
        assert_eq!(found, classes, "{stage}: {dead:?}");
        for d in &dead {
            assert_eq!(d.attributes["imgflow.stage"], stage.as_str());
            assert!(!d.attributes["imgflow.error"].is_empty());
            assert!(d.attributes.contains_key("imgflow.failed_at"));
            assert_eq!(d.attributes["imgflow.receive_count"], "1");
        }
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_failing_transiently_twice_still_labels_the_image() {
    let mut p = TestPipeline::new("e2e-flaky").await;
    let detector = Arc::new(
        FakeDetector::new(vec![])
            .failing_first([PortErrorKind::Throttled, PortErrorKind::Retryable]),
    );
    p.start_ingest().await;
    p.start_label(detector.clone()).await;
    p.start_store().await;
    let id = p.put("incoming/flaky/cat.png", photo("chelsea.png")).await;
    let records = p.wait_final(&[id], WAIT).await;
    assert_eq!(records[0].status, ImageStatus::Labeled);
    assert_eq!(records[0].detector.as_deref(), Some("fake"));
    assert_eq!(detector.calls(), 3);
    assert_no_dead_letters(&p).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_uploads_are_labeled_and_bad_ones_refused() {
    let mut p = TestPipeline::new("e2e-http").await;
    p.start_all().await;
    let state = Arc::new(imgflow_api::ApiState::new(
        imgflow_aws::s3::S3Store::new(p.aws.s3.clone()),
        p.table(),
        p.catalog(),
        p.names.bucket.clone(),
        "incoming/api/".into(),
        Limits {
            max_bytes: 700_000,
            ..Limits::default()
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server =
        tokio::spawn(async move { axum::serve(listener, imgflow_api::router(state)).await });
    let http = reqwest::Client::new();

    let raw = http
        .post(format!("{base}/images"))
        .header("content-type", "image/jpeg")
        .body(photo("rocket.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 202);
    let raw: serde_json::Value = raw.json().await.unwrap();

    // The tutorial's JSON shape, larger than its 256 KB state-machine input limit.
    let encoded = base64::engine::general_purpose::STANDARD.encode(photo("chelsea.png"));
    assert!(encoded.len() > 256 * 1024);
    let b64 = http
        .post(format!("{base}/images"))
        .json(&serde_json::json!({ "base64Image": encoded }))
        .send()
        .await
        .unwrap();
    assert_eq!(b64.status(), 202);
    let b64: serde_json::Value = b64.json().await.unwrap();

    // curl -F file=@rocket.jpg: multipart, the file's name kept in the key.
    let boundary = "------------------------e2e0123456789abc";
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"rocket.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
            .into_bytes();
    body.extend(photo("rocket.jpg"));
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let form = http
        .post(format!("{base}/images"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 202);
    let form: serde_json::Value = form.json().await.unwrap();
    assert!(
        form["key"].as_str().unwrap().ends_with("/rocket.jpg"),
        "{form}"
    );

    for upload in [raw, b64, form] {
        let id = upload["id"].as_str().unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let response = http
                .get(format!("{base}/images/{id}"))
                .send()
                .await
                .unwrap();
            if response.status() == 200 {
                let item: serde_json::Value = response.json().await.unwrap();
                if item["status"] == "labeled" {
                    assert_eq!(item["key"], upload["key"]);
                    assert!(item["labels"].as_array().is_some_and(|l| !l.is_empty()));
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} was not labeled"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    let oversize = http
        .post(format!("{base}/images"))
        .header("content-type", "image/png")
        .body(photo("astronaut.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status(), 413);
    let text = http
        .post(format!("{base}/images"))
        .header("content-type", "image/png")
        .body("definitely not a png")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let reason: serde_json::Value = text.json().await.unwrap();
    assert!(
        reason["error"].as_str().unwrap().contains("text"),
        "{reason}"
    );
    let unknown = http
        .get(format!("{base}/images/0000"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    server.abort();
    p.stop().await;
}

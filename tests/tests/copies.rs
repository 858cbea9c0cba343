//! Exact copies and near-duplicates through the real binaries on the emulator: one picture
//! uploaded under five keys at once costs one detector call and ends as five labelled items; a
//! one-pixel change, an EXIF-only change and a resized copy are pictures of their own, found as
//! near-duplicates; `imgflow duplicates` and the console show both kinds apart.
use std::{collections::HashMap, time::Duration};

use imgflow_e2e::{
    bin_dir, free_port, http_ok, log_dir, photo, process_env, send_signal, spawn_binary,
    spawn_stages, stop_all, until, TestPipeline, REUSE_COPIES,
};
use imgflow_messages::ImageStatus;
use imgflow_runtime::ports::ImageTable;

/// `png` with its first pixel's red channel changed by one.
fn one_pixel_changed(png: &[u8]) -> Vec<u8> {
    let mut image = image::load_from_memory(png).unwrap().to_rgb8();
    let pixel = image.get_pixel_mut(0, 0);
    pixel.0[0] = pixel.0[0].wrapping_add(1);
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// `png` at half its size.
fn half_size(png: &[u8]) -> Vec<u8> {
    let image = image::load_from_memory(png).unwrap();
    let small = image.resize(
        image.width() / 2,
        image.height() / 2,
        image::imageops::FilterType::Triangle,
    );
    let mut out = std::io::Cursor::new(Vec::new());
    small.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// `jpeg` with an EXIF segment (an empty IFD) after its start marker: the same pixels.
fn exif_added(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], b"\xff\xd8");
    let tiff = b"II\x2a\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend_from_slice(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(b"\xff\xe1");
    out.extend_from_slice(&((segment.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_picture_under_five_keys_costs_one_call_and_changed_bytes_are_their_own() {
    let p = TestPipeline::new("e2e-copies").await;
    let logs = log_dir(&p.names.prefix);
    std::fs::create_dir_all(&logs).unwrap();
    let calls = logs.join("detector-calls.log");
    let env = [
        ("IMGFLOW_DETECTOR", "fixed".to_owned()),
        // Long enough that the copies arrive while the first of them is being labelled.
        ("IMGFLOW_FIXED_LATENCY_MS", "3000".to_owned()),
        ("IMGFLOW_DETECTOR_CALL_LOG", calls.display().to_string()),
        // One message per receive, so several pollers: a batch of one copy does not wait for
        // the batch holding its original.
        ("IMGFLOW_MAX_MESSAGES", "1".to_owned()),
        (REUSE_COPIES.0, REUSE_COPIES.1.to_owned()),
    ];
    let mut workers = spawn_stages(&p.names.prefix, &logs, &env);

    let cat = photo("chelsea.png");
    let rocket = photo("rocket.jpg");
    // Uploaded together: the copies race the original for the detector.
    let uploads = (0..5)
        .map(|n| (format!("incoming/copies/cat-{n}.png"), cat.clone()))
        .chain([
            (
                "incoming/copies/cat-pixel.png".to_owned(),
                one_pixel_changed(&cat),
            ),
            ("incoming/copies/rocket.jpg".to_owned(), rocket.clone()),
            (
                "incoming/copies/rocket-exif.jpg".to_owned(),
                exif_added(&rocket),
            ),
            ("incoming/copies/cat-small.jpg".to_owned(), half_size(&cat)),
        ]);
    let puts = uploads.map(|(key, body)| {
        let p = &p;
        async move { (p.put(&key, body).await, key) }
    });
    let ids: HashMap<String, String> = futures::future::join_all(puts).await.into_iter().collect();
    let all: Vec<String> = ids.keys().cloned().collect();
    let records = p.wait_final(&all, Duration::from_secs(120)).await;
    // The thumbnail branch links near-duplicates; wait for it too.
    until("every image complete", Duration::from_secs(60), || async {
        let mut done = true;
        for id in &all {
            let record = p.table().get(id).await.unwrap().unwrap();
            done &= record.completed_at.is_some();
        }
        done.then_some(())
    })
    .await;
    let port = free_port();
    let mut api = spawn_binary(
        "imgflow-api",
        &p.names.prefix,
        &logs,
        &[("IMGFLOW_API_ADDR", format!("127.0.0.1:{port}"))],
    );
    let base = format!("http://127.0.0.1:{port}");
    until("the API", Duration::from_secs(30), || async {
        http_ok(&format!("{base}/healthz")).await.then_some(())
    })
    .await;
    let html = |path: String| async move {
        reqwest::Client::new()
            .get(path)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let duplicates_page = html(format!("{base}/duplicates")).await;
    let small_id = ids
        .iter()
        .find(|(_, key)| key.ends_with("cat-small.jpg"))
        .map(|(id, _)| id.clone())
        .unwrap();
    let small_page = html(format!("{base}/images/{small_id}")).await;
    send_signal(&api, "TERM");
    api.wait().await.unwrap();
    let printed = std::process::Command::new(bin_dir().join("imgflow"))
        .args(["--prefix", &p.names.prefix, "duplicates"])
        .envs(process_env(&p.names.prefix))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    stop_all(&mut workers).await;

    let by_key: HashMap<&str, _> = records.iter().map(|r| (ids[&r.id].as_str(), r)).collect();
    for record in &records {
        assert_eq!(record.status, ImageStatus::Labeled, "{}", record.key);
        assert!(record.labels.as_ref().is_some_and(|l| !l.is_empty()));
    }
    let cats: Vec<_> = (0..5)
        .map(|n| by_key[format!("incoming/copies/cat-{n}.png").as_str()])
        .collect();
    let originals: Vec<_> = cats.iter().filter(|r| r.duplicate_of.is_none()).collect();
    assert_eq!(originals.len(), 1, "one original among the copies");
    for copy in cats.iter().filter(|r| r.duplicate_of.is_some()) {
        assert_eq!(copy.duplicate_of.as_deref(), Some(originals[0].id.as_str()));
        assert_eq!(copy.labels, originals[0].labels);
    }
    for own in [
        "incoming/copies/cat-pixel.png",
        "incoming/copies/rocket.jpg",
        "incoming/copies/rocket-exif.jpg",
        "incoming/copies/cat-small.jpg",
    ] {
        assert_eq!(by_key[own].duplicate_of, None, "{own}");
    }
    let called = std::fs::read_to_string(&calls).unwrap();
    let mut called: Vec<&str> = called.lines().collect();
    called.sort();
    let cat_calls = called
        .iter()
        .filter(|k| {
            k.starts_with("incoming/copies/cat-")
                && !k.ends_with("pixel.png")
                && !k.ends_with("small.jpg")
        })
        .count();
    assert_eq!(cat_calls, 1, "one call for five copies: {called:?}");
    assert_eq!(
        called.len(),
        5,
        "and one for each changed picture: {called:?}"
    );
    let label_log = std::fs::read_to_string(logs.join("imgflow-label.log")).unwrap();
    assert_eq!(
        label_log
            .matches("its labels copied; detector not called")
            .count(),
        4,
        "{label_log}"
    );
    // They waited for it, at info: a copy is not a failure.
    let waits: Vec<&str> = label_log
        .lines()
        .filter(|l| l.contains("which is being labelled now"))
        .collect();
    assert!(!waits.is_empty(), "{label_log}");
    assert!(waits.iter().all(|l| l.contains(" INFO ")), "{waits:?}");

    // Every image got a perceptual hash from the thumbnail branch.
    for id in &all {
        let record = p.table().get(id).await.unwrap().unwrap();
        let hash = record.thumbnail.and_then(|t| t.perceptual_hash);
        assert!(hash.is_some_and(|h| h.len() == 16), "{}", record.key);
    }
    // Exact copies apart from near-duplicates, in the CLI...
    let (exact, near) = printed.split_once("NEAR-DUPLICATES").unwrap();
    let original_key = &originals[0].key;
    let exact_line = exact
        .lines()
        .find(|l| l.contains(original_key.as_str()))
        .unwrap_or_else(|| panic!("{printed}"));
    assert_eq!(
        exact_line.matches("incoming/copies/cat-").count(),
        5,
        "{printed}"
    );
    for changed in ["cat-pixel.png", "cat-small.jpg", "rocket-exif.jpg"] {
        assert!(near.contains(changed), "{changed}: {printed}");
        assert!(!exact.contains(changed), "{changed}: {printed}");
    }
    // ...and in the console.
    assert!(
        duplicates_page.contains("<h2>Exact copies</h2>"),
        "{duplicates_page}"
    );
    assert!(
        duplicates_page.contains("rocket-exif.jpg"),
        "{duplicates_page}"
    );
    assert!(
        small_page.contains("<h2>Near-duplicates</h2>") && small_page.contains("of 64 bits differ"),
        "{small_page}"
    );
}

/// On a versioned bucket (as the stack's), stored unencrypted or SSE-S3, ingest passes the
/// ETag on as the bytes' MD5 and the label stage finds copies without a HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_versioned_bucket_copies_are_named_by_their_etag_without_a_head() {
    let p = TestPipeline::new("e2e-copies-md5").await;
    // Versioned, as the stack's bucket is.
    p.versioned().await;
    let logs = log_dir(&p.names.prefix);
    std::fs::create_dir_all(&logs).unwrap();
    let calls = logs.join("detector-calls.log");
    let env = [
        ("IMGFLOW_DETECTOR", "fixed".to_owned()),
        ("IMGFLOW_FIXED_LATENCY_MS", "1000".to_owned()),
        ("IMGFLOW_DETECTOR_CALL_LOG", calls.display().to_string()),
        (REUSE_COPIES.0, REUSE_COPIES.1.to_owned()),
    ];
    let mut workers: Vec<_> = imgflow_runtime::config::Stage::ALL
        .iter()
        .map(|stage| {
            let mut env = env.to_vec();
            if *stage == imgflow_runtime::config::Stage::Label {
                // Any free port (a port picked here could be taken meanwhile by another test's
                // process); the log names it.
                env.push(("IMGFLOW_METRICS_ADDR", "127.0.0.1:0".to_owned()));
            }
            imgflow_e2e::spawn_worker(*stage, &p.names.prefix, &logs, &env)
        })
        .collect();
    let metrics_addr = until(
        "the label stage's metrics address",
        Duration::from_secs(30),
        || {
            let log = logs.join("imgflow-label.log");
            async move {
                let log = std::fs::read_to_string(log).ok()?;
                let line = log.lines().find(|l| l.contains("serving /metrics"))?;
                let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
                Some(addr.trim_matches('"').to_owned())
            }
        },
    )
    .await;
    let coffee = photo("coffee.png");
    let puts = (0..3).map(|n| {
        let (p, body) = (&p, coffee.clone());
        async move { p.put(&format!("incoming/md5/coffee-{n}.png"), body).await }
    });
    let ids: Vec<String> = futures::future::join_all(puts).await;
    let records = p.wait_final(&ids, Duration::from_secs(120)).await;
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop_all(&mut workers).await;

    assert!(records.iter().all(|r| r.status == ImageStatus::Labeled));
    assert_eq!(
        records.iter().filter(|r| r.duplicate_of.is_some()).count(),
        2
    );
    let called = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(called.lines().count(), 1, "{called}");
    assert!(
        !metrics.contains(r#"operation="HeadObject""#),
        "the label stage made a HEAD: {metrics}"
    );
    // The copies read their bytes (and the first, the original's) to confirm them by SHA-256.
    assert!(metrics.contains(r#"operation="GetObject""#), "{metrics}");
}

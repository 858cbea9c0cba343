//! What a new operator meets first, through the real binaries: every worker's `--help` and
//! `--version`, and the `imgflow` command's errors before `provision`, with the emulator
//! unreachable, without a region, and with clashing file names; `results` on a terminal and a
//! pipe; the API before `provision`.
use std::{
    process::{Command, Output},
    time::Duration,
};

use imgflow_e2e::{
    bin_dir, endpoint, free_port, http_ok, log_dir, png_with_dimensions, send_signal, spawn_binary,
    spawn_worker, until, TestPipeline,
};
use imgflow_messages::{
    ImageLabeled, ImageRecord, ImageRef, ImageStatus, Label, NamedRef, SCHEMA_VERSION,
};
use imgflow_runtime::{clock, ports::ImageTable};

fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin_dir().join(binary))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {binary}: {e}"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_worker_explains_itself_and_starts_nothing() {
    for (binary, own_setting) in [
        ("imgflow-ingest", "IMGFLOW_MIN_SIDE_PX"),
        ("imgflow-label", "IMGFLOW_DETECTOR_ATTEMPTS"),
        ("imgflow-store", "IMGFLOW_CONCURRENCY"),
        ("imgflow-thumbnail", "IMGFLOW_MAX_DECODED_BYTES"),
        ("imgflow-api", "IMGFLOW_API_KEY"),
    ] {
        let out = run(binary, &["--help"], &[]);
        let (stdout, _) = text(&out);
        assert!(out.status.success(), "{binary} --help: {out:?}");
        assert!(stdout.contains("IMGFLOW_PREFIX"), "{binary}: {stdout}");
        assert!(stdout.contains(own_setting), "{binary}: {stdout}");
        assert!(stdout.contains("default:"), "{binary}: {stdout}");

        let out = run(binary, &["--version"], &[]);
        assert!(out.status.success());
        assert!(text(&out).0.contains(env!("CARGO_PKG_VERSION")));

        let out = run(binary, &["--frobnicate"], &[]);
        assert_eq!(out.status.code(), Some(2), "{binary}: {out:?}");
        assert!(text(&out).1.contains("--help"));
    }
}

#[test]
fn the_local_detector_on_onnxruntime_names_what_is_missing_and_stops_at_start() {
    let local = [
        ("IMGFLOW_PREFIX", "first-hour-engine"),
        ("IMGFLOW_DETECTOR", "local"),
        ("IMGFLOW_LOCAL_ENGINE", "onnxruntime"),
    ];
    let stops_with = |extra: &[(&str, &str)], hint: &str| {
        let env: Vec<_> = local.iter().chain(extra).copied().collect();
        let mut command = Command::new(bin_dir().join("imgflow-label"));
        command.env_remove("IMGFLOW_ONNXRUNTIME_LIB");
        let out = command
            .env("AWS_ENDPOINT_URL", endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("RUST_BACKTRACE", "0")
            .envs(env)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(hint), "expected {hint:?} in: {stderr}");
    };
    stops_with(&[], "needs IMGFLOW_ONNXRUNTIME_LIB");
    stops_with(
        &[("IMGFLOW_ONNXRUNTIME_LIB", "/nonexistent/libonnxruntime.so")],
        "failed to load from `/nonexistent/libonnxruntime.so`",
    );
    stops_with(
        &[("IMGFLOW_LOCAL_ENGINE", "onnx")],
        "expected tract or onnxruntime",
    );
}

/// One line saying what failed and one saying what to do; the SDK's detail only with -v.
fn assert_short_error(out: &Output, hint: &str) {
    let (_, stderr) = text(out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(hint), "expected {hint:?} in: {stderr}");
    assert!(
        stderr.len() < 600 && !stderr.contains("raw: Response"),
        "too much for a person: {stderr}"
    );
}

#[test]
fn commands_before_provision_say_to_provision() {
    let prefix = ["--prefix", "first-hour-never-provisioned"];
    for command in [
        &["status"][..],
        &["results"],
        &["dlq", "inspect", "--stage", "label"],
    ] {
        let args: Vec<&str> = command.iter().chain(&prefix).copied().collect();
        let out = run("imgflow", &args, &[]);
        // The command pastes: the region searched and the prefix asked for.
        assert_short_error(
            &out,
            "run `AWS_REGION=us-east-1 imgflow provision --prefix first-hour-never-provisioned`",
        );
        let verbose: Vec<&str> = args.iter().copied().chain(["-v"]).collect();
        let (_, detail) = text(&run("imgflow", &verbose, &[]));
        assert!(
            detail.contains("caused by"),
            "-v shows the causes: {detail}"
        );
    }
}

#[test]
fn an_unreachable_endpoint_and_a_missing_region_are_named() {
    let out = run(
        "imgflow",
        &["status"],
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
    );
    assert_short_error(&out, "cannot reach the endpoint http://127.0.0.1:9");

    let mut command = Command::new(bin_dir().join("imgflow"));
    let out = command
        .arg("status")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_ENDPOINT_URL", endpoint())
        .output()
        .unwrap();
    assert_short_error(&out, "no AWS region set");
}

/// Settings that keep every AWS call from working stop every binary at start, in one line
/// that names the cause (told apart by the SDK's error kinds), with no backtrace even where
/// `RUST_BACKTRACE=1` is set.
#[test]
fn every_binary_names_a_setting_that_cannot_work() {
    // None anywhere, on a CI machine with an instance role or a container's credentials too.
    let no_credentials: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_PROFILE", ""),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", ""),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", ""),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", ""),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            no_credentials,
            "no AWS credentials found (none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
             AWS_PROFILE, SSO, or a container or instance role); with the emulator any pair \
             works: export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test",
        ),
        (
            &[("AWS_ENDPOINT_URL", "localhost:4601")],
            "error: AWS_ENDPOINT_URL=localhost:4601 has no scheme: write http://localhost:4601 \
             (a local emulator) or https://localhost:4601",
        ),
        (
            &[
                ("AWS_REGION", ""),
                ("AWS_DEFAULT_REGION", ""),
                ("AWS_CONFIG_FILE", "/nonexistent"),
            ],
            "error: no AWS region set: set AWS_REGION (or a region in your AWS profile), for \
             example us-east-1; with the emulator any region works",
        ),
    ];
    let api_addr = format!("127.0.0.1:{}", free_port());
    for (binary, args) in [
        ("imgflow", &["status"][..]),
        ("imgflow-ingest", &[]),
        ("imgflow-label", &[]),
        ("imgflow-store", &[]),
        ("imgflow-thumbnail", &[]),
        ("imgflow-api", &[]),
    ] {
        for (env, says) in cases {
            let mut command = Command::new(bin_dir().join(binary));
            command
                .args(args)
                .env("AWS_ENDPOINT_URL", endpoint())
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("RUST_BACKTRACE", "1")
                .env("IMGFLOW_METRICS_ADDR", "off")
                .env("IMGFLOW_API_ADDR", &api_addr)
                .env_remove("RUST_LOG");
            for (name, value) in env {
                if value.is_empty() {
                    command.env_remove(name);
                } else {
                    command.env(name, value);
                }
            }
            let out = command.output().unwrap();
            let (_, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(1), "{binary}: {stderr}");
            assert!(
                stderr.contains(says),
                "{binary}: expected {says:?} in: {stderr}"
            );
            assert!(
                !stderr.contains("backtrace") && !stderr.contains("DispatchFailure"),
                "{binary}: {stderr}"
            );
            assert!(
                !stderr.contains("is it running") && !stderr.contains("api listening"),
                "{binary}: {stderr}"
            );
        }
    }
}

/// Quiet when nothing is wrong: photos without EXIF, larger than the head ingest reads,
/// leave no line about EXIF in the ingest binary's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_without_exif_log_nothing_about_exif() {
    let p = TestPipeline::new("e2e-quiet-exif").await;
    let logs = log_dir(&p.names.prefix);
    let mut ingest = spawn_worker(
        imgflow_runtime::config::Stage::Ingest,
        &p.names.prefix,
        &logs,
        &[],
    );
    let mut ids = Vec::new();
    for name in ["chelsea.png", "coffee.png", "rocket.jpg"] {
        let photo = imgflow_e2e::photo(name);
        assert!(
            photo.len() > 64 * 1024,
            "{name} is larger than the head ingest reads"
        );
        ids.push(p.put(&format!("incoming/{name}"), photo).await);
    }
    until("every photo accepted", Duration::from_secs(60), || async {
        let items = p.items().await;
        ids.iter()
            .all(|id| items.iter().any(|r| &r.id == id))
            .then_some(())
    })
    .await;
    send_signal(&ingest, "TERM");
    ingest.wait().await.unwrap();
    let log = std::fs::read_to_string(logs.join("imgflow-ingest.log")).unwrap();
    assert!(!log.contains("EXIF"), "{log}");
}

/// A duplicate event while its image is being labelled waits for the live claim: the label
/// binary logs that at info, as a duplicate with when it is rechecked, never as a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_waiting_on_a_claim_is_logged_as_one_not_as_a_failure() {
    use imgflow_runtime::config::Stage;
    let p = TestPipeline::new("e2e-quiet-dup").await;
    let logs = log_dir(&p.names.prefix);
    std::fs::create_dir_all(&logs).unwrap();
    let calls = logs.join("detector-calls.log");
    let env = [
        ("IMGFLOW_DETECTOR", "fixed".to_owned()),
        ("IMGFLOW_FIXED_LATENCY_MS", "3000".to_owned()),
        ("IMGFLOW_DETECTOR_CALL_LOG", calls.display().to_string()),
        // One message per receive: several pollers, so the duplicate is received while the
        // first copy's call runs (one poller finishes its batch before it receives again).
        ("IMGFLOW_MAX_MESSAGES", "1".to_owned()),
    ];
    let mut workers: Vec<_> = Stage::ALL
        .iter()
        .map(|s| spawn_worker(*s, &p.names.prefix, &logs, &env))
        .collect();
    let id = p
        .put("incoming/dup/cat.png", imgflow_e2e::photo("chelsea.png"))
        .await;
    until(
        "the detector call under way",
        Duration::from_secs(60),
        || async {
            std::fs::read_to_string(&calls)
                .is_ok_and(|text| !text.is_empty())
                .then_some(())
        },
    )
    .await;
    let event = serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-27T03:40:11.532Z",
        "s3": {"bucket": {"name": p.names.bucket}, "object": {"key": "incoming%2Fdup%2Fcat.png"}}
    }]});
    p.send(Stage::Ingest, &event.to_string()).await;
    let label_log = logs.join("imgflow-label.log");
    until(
        "the duplicate's wait logged",
        Duration::from_secs(60),
        || async {
            std::fs::read_to_string(&label_log)
                .is_ok_and(|log| log.contains("waiting: a duplicate"))
                .then_some(())
        },
    )
    .await;
    let records = p.wait_final(&[id], Duration::from_secs(60)).await;
    assert_eq!(records[0].status, imgflow_messages::ImageStatus::Labeled);
    for worker in &workers {
        send_signal(worker, "TERM");
    }
    for worker in &mut workers {
        worker.wait().await.unwrap();
    }
    let log = std::fs::read_to_string(&label_log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("waiting: a duplicate"))
        .unwrap();
    assert!(
        line.contains(" INFO ") && line.contains("recheck_in="),
        "{line}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains(" WARN ") && l.contains("label_claim_held")),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap().lines().count(),
        1,
        "one detector call"
    );
}

/// `submit` uploads images only, says what it skipped, shows the OS's reason for a file it
/// cannot read, exits non-zero when something asked for failed, and, waiting on a stage no
/// worker receives from, names that stage and its queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_skips_what_is_not_an_image_and_names_what_it_waits_for() {
    let p = TestPipeline::new("e2e-submit-says").await;
    let dir = log_dir(&p.names.prefix).join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.png"), png_with_dimensions(200, 100)).unwrap();
    std::fs::write(dir.join("README.md"), "# holiday photos").unwrap();
    std::fs::write(dir.join("SHA256SUMS"), "0123  a.png").unwrap();
    let notes = log_dir(&p.names.prefix).join("notes.txt");
    std::fs::write(&notes, "not an image").unwrap();
    let prefix = ["--prefix", p.names.prefix.as_str()];
    let submit = |args: &[&str]| {
        let args: Vec<&str> = ["submit"]
            .iter()
            .chain(args)
            .chain(&prefix)
            .copied()
            .collect();
        run("imgflow", &args, &[])
    };

    let out = submit(&[dir.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped 2 file(s) that are not PNG or JPEG images")
            && stderr.contains("README.md")
            && stderr.contains("SHA256SUMS")
            && stderr.contains("submitted 1 files"),
        "{stderr}"
    );

    let out = submit(&["/nonexistent/missing.jpg"]);
    assert_short_error(
        &out,
        "cannot read /nonexistent/missing.jpg: No such file or directory (os error 2)",
    );

    let out = submit(&[notes.to_str().unwrap(), dir.join("a.png").to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: not submitted, not PNG or JPEG images: ")
            && stderr.contains("notes.txt"),
        "{stderr}"
    );
    assert!(
        stderr.contains("submitted 1 files"),
        "the image still went: {stderr}"
    );

    // No worker runs: the wait names the stage that holds the image and its queue.
    let out = submit(&[
        dir.join("a.png").to_str().unwrap(),
        "--wait",
        "--timeout-secs",
        "3",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ingest: ")
            && stderr.contains("is an imgflow-ingest worker running for this prefix?"),
        "{stderr}"
    );
}

#[test]
fn two_files_with_one_name_are_refused_before_any_upload() {
    let dir = std::env::temp_dir().join(format!("imgflow-first-hour-{}", std::process::id()));
    for sub in ["a", "b"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join("photo.png"), png_with_dimensions(64, 64)).unwrap();
    }
    let a = dir.join("a/photo.png");
    let b = dir.join("b/photo.png");
    let out = run(
        "imgflow",
        &["submit", a.to_str().unwrap(), b.to_str().unwrap()],
        &[],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_short_error(&out, "would both be stored as incoming/photo.png");
}

#[test]
fn provision_lists_every_resource_created_then_unchanged() {
    let prefix = format!("fh-prov-{}", std::process::id());
    let first = run("imgflow", &["--prefix", &prefix, "provision"], &[]);
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "{stderr}");
    assert!(stdout.contains(&format!("{prefix}-index")), "{stdout}");
    assert!(
        // Bucket, 2 tables, 5 topics, 4 queues and their 4 dead-letter queues.
        stdout.ends_with("15 created, 0 already there\n"),
        "{stdout}"
    );
    let again = run("imgflow", &["--prefix", &prefix, "provision"], &[]);
    let (stdout, _) = text(&again);
    assert!(again.status.success());
    assert!(!stdout.contains(" created "), "{stdout}");
    assert!(
        stdout.ends_with("0 created, 15 already there\n"),
        "{stdout}"
    );
    // S3's test events (one per notification configured) are not uploads: none waits.
    let status = run("imgflow", &["--prefix", &prefix, "status"], &[]);
    let (stdout, stderr) = text(&status);
    assert!(status.status.success(), "{stderr}");
    let ingest: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("ingest"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(ingest[1..4], ["0", "0", "0"], "{stdout}");
}

fn seeded_image(p: &TestPipeline, n: usize, key: &str) -> ImageRef {
    ImageRef {
        image_id: format!("{n:x}{}", "0".repeat(31)),
        trace_id: format!("t{n}"),
        bucket: p.names.bucket.clone(),
        key: key.into(),
        version_id: None,
        etag: format!("e{n}"),
        received_at: clock::now_rfc3339(),
    }
}

/// `results` as a person reads it: ids that tell two `photo.png` apart, a hint when more rows
/// exist, a sentence for no match, and no screen clearing written into a pipe.
#[tokio::test]
async fn results_reads_well_for_a_person_and_a_pipe() {
    let p = TestPipeline::new("fh_results").await;
    let images = [
        seeded_image(&p, 1, "incoming/a/photo.png"),
        seeded_image(&p, 2, "incoming/b/photo.png"),
        seeded_image(&p, 3, "incoming/c.png"),
    ];
    for image in &images {
        let record = ImageRecord::new(
            image.image_id.clone(),
            image.bucket.clone(),
            image.key.clone(),
            image.etag.clone(),
            image.received_at.clone(),
            ImageStatus::Accepted,
        );
        p.table().write_verdict(&record).await.unwrap();
    }
    for image in &images[..2] {
        let dog = Label {
            name: "Dog".into(),
            confidence: 91.0,
            instances: vec![],
            parents: vec![NamedRef::new("Animal")],
            categories: vec![],
        };
        p.store_labels(&ImageLabeled {
            duplicate_of: None,
            schema_version: SCHEMA_VERSION,
            image: image.clone(),
            labels: vec![dog],
            detector: "test".into(),
            label_model_version: "1".into(),
            labeled_at: clock::now_rfc3339(),
        })
        .await;
    }
    let prefix = p.names.prefix.as_str();

    let out = run(
        "imgflow",
        &["--prefix", prefix, "results", "--label", "dog"],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("ID "), "{stdout}");
    for image in &images[..2] {
        assert!(stdout.contains(&image.image_id[..12]), "{stdout}");
    }
    assert_eq!(stdout.matches("photo.png").count(), 2, "{stdout}");
    assert!(stdout.contains("Dog (91%)"), "{stdout}");
    assert!(!stdout.contains("c.png"), "{stdout}");

    let out = run(
        "imgflow",
        &["--prefix", prefix, "results", "--limit", "2"],
        &[],
    );
    let (stdout, _) = text(&out);
    assert_eq!(stdout.lines().count(), 4, "header, 2 rows, hint: {stdout}");
    assert!(stdout.contains("--limit for more"), "{stdout}");

    let out = run(
        "imgflow",
        &["--prefix", prefix, "results", "--label", "unicorn"],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(text(&out).0, "no matching images\n");

    // --watch into a pipe: the same tables, one after another, and no escape codes.
    let mut watch = Command::new(bin_dir().join("imgflow"))
        .args(["--prefix", prefix, "results", "--watch"])
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    watch.kill().unwrap();
    let out = watch.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("incoming/c.png"), "{stdout}");
    assert!(
        !stdout.contains('\x1b'),
        "escape codes in a pipe: {stdout:?}"
    );
}

/// The API before `imgflow provision`: uploads answer 503 naming the command, and `/readyz`
/// names the missing table.
#[tokio::test]
async fn the_api_before_provision_says_to_provision() {
    let prefix = format!("fh-api-{}", std::process::id());
    let port = free_port();
    let _api = spawn_binary(
        "imgflow-api",
        &prefix,
        &log_dir(&prefix),
        &[("IMGFLOW_API_ADDR", format!("127.0.0.1:{port}"))],
    );
    let base = format!("http://127.0.0.1:{port}");
    until("the API to listen", Duration::from_secs(30), || async {
        http_ok(&format!("{base}/healthz")).await.then_some(())
    })
    .await;
    let client = reqwest::Client::new();

    let upload = client
        .post(format!("{base}/images"))
        .header("content-type", "image/png")
        .body(png_with_dimensions(200, 200))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 503);
    let body: serde_json::Value = upload.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(&format!("the bucket {prefix}-")), "{error}");
    // The command pastes for this deployment: the emulator's endpoint, region and prefix.
    assert!(
        error.contains(&format!(
            "run `AWS_ENDPOINT_URL={} AWS_REGION=us-east-1 imgflow provision --prefix {prefix}`",
            endpoint()
        )),
        "{error}"
    );

    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    assert!(
        text.contains(&format!(
            "the table is missing; run `AWS_ENDPOINT_URL={} AWS_REGION=us-east-1 imgflow \
             provision --prefix {prefix}`",
            endpoint()
        )),
        "{text}"
    );
}

/// `imgflow cost` on a fresh clone, from anywhere, without AWS settings: the figures recorded
/// with the README's benchmark, and it says so.
#[test]
fn cost_answers_offline_from_the_recorded_figures() {
    let out = Command::new(bin_dir().join("imgflow"))
        .arg("cost")
        .current_dir(std::env::temp_dir())
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("| **total** |"), "{stdout}");
    assert!(
        stderr.contains("recorded with the README's benchmark"),
        "{stderr}"
    );
}

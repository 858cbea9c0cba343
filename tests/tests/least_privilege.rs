//! Least privilege, enforced: every binary runs under an IAM user whose policy is exactly its
//! role's policy in `deploy/cloudformation/imgflow.yaml` (resolved for this test's account,
//! region and prefix, not copied), the CLI under the template's operator policy, against a
//! private emulator that enforces IAM (moto's `INITIAL_NO_AUTH_ACTION_COUNT`, switched on once
//! the test has set everything up). A missing grant shows up here as an AccessDenied, and the
//! negative runs check that each grant on the path is needed at the step that uses it.
//!
//! moto's gaps, worked around and covered elsewhere: it matches SNS and DynamoDB statements,
//! and `sqs:GetQueueUrl` (whose request names a queue, not its URL), only when their resource
//! is `*`, so those statements are loaded with `*` here (their resource scoping is pinned by
//! `deploy.rs`); it ignores `s3:prefix` conditions
//! and answers NoSuchKey where AWS answers 403 (the `s3:ListBucket` grant for a missing key is
//! pinned by `deploy.rs` and the 403 message by the S3 adapter's test); and it checks batch
//! calls against actions of their own (`sqs:DeleteMessageBatch`, `sns:PublishBatch`), which
//! AWS authorizes with the single-message action (`sqs:DeleteMessage`, `sns:Publish`), so
//! those aliases are added to the loaded policy.
use std::{collections::BTreeMap, time::Duration};

use imgflow_e2e::{free_port, log_dir, photo, spawn_binary, until};
use imgflow_operations::provision::{provision, ProvisionSettings};
use imgflow_runtime::config::{Names, Stage, COMPLETED_TOPIC};
use serde_json::{json, Value};
use support::iam::{create_user, AccessKey, PrivateEmulator, Removal, Stack, REGION};

mod support;

const API_KEY: &str = "least-privilege-test-key-0123456789";

/// Everything a deployment does, each part under its own grants. `Err` says what failed.
async fn run_deployment(test: &str, removal: Removal) -> Result<(), String> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("{test}-{}", &suffix[..8]);
    let logs = log_dir(&prefix);
    let emulator = PrivateEmulator::start(&logs).await;
    let stack = Stack::load(&prefix);

    // Set-up, before IAM is enforced: the resources (named as the template names them), a
    // user per role, the operator, and an administrator for the test's own moves.
    let setup = AccessKey {
        id: "testing".into(),
        secret: "testing".into(),
    };
    let admin_clients = emulator.clients(&setup).await;
    let mut names = Names::new(prefix.clone());
    names.bucket = stack.name("ImagesBucket");
    names.table = stack.name("ImagesTable");
    names.index_table = stack.name("IndexTable");
    let provisioned = provision(&admin_clients, &names, &ProvisionSettings::default())
        .await
        .map_err(|e| format!("provisioning: {e}"))?;
    let iam = aws_sdk_iam::Client::new(&emulator.config(&setup).await);
    let mut keys = BTreeMap::new();
    for (user, policy) in [
        ("ingest", "IngestPolicy"),
        ("label", "LabelPolicy"),
        ("store", "StorePolicy"),
        ("thumbnail", "ThumbnailPolicy"),
        ("api", "ApiPolicy"),
        ("operator", "OperatorPolicy"),
    ] {
        let without = removal.filter(|(p, _)| *p == policy).map(|(_, a)| a);
        let document = stack.policy(policy, without);
        keys.insert(
            user,
            create_user(&iam, &format!("{prefix}-{user}"), &document).await,
        );
    }
    let admin = create_user(
        &iam,
        &format!("{prefix}-admin"),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    )
    .await;
    emulator.enforce_iam().await;
    let admin_clients = emulator.clients(&admin).await;

    let common = |key: &AccessKey| -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", emulator.endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("IMGFLOW_BUCKET", names.bucket.clone()),
            ("IMGFLOW_TABLE", names.table.clone()),
            ("IMGFLOW_INDEX_TABLE", names.index_table.clone()),
            ("IMGFLOW_INCOMING_PREFIX", stack.incoming.clone()),
        ];
        env.extend(key.env());
        env
    };
    // Workers as the template configures them: URLs and ARNs given, nothing looked up.
    let mut children = Vec::new();
    let mut ready_urls = Vec::new();
    for stage in Stage::ALL {
        let port = free_port();
        let mut env = common(&keys[stage.as_str()]);
        env.extend([
            ("IMGFLOW_QUEUE_URL", provisioned.queue_urls[&stage].clone()),
            (
                "IMGFLOW_DLQ_URL",
                provisioned.dead_letter_queue_urls[&stage].clone(),
            ),
            (
                "IMGFLOW_TOPIC_ARN",
                provisioned.topic_arns[&names.topic(stage.output_topic())].clone(),
            ),
            (
                "IMGFLOW_COMPLETED_TOPIC_ARN",
                provisioned.topic_arns[&names.topic(COMPLETED_TOPIC)].clone(),
            ),
            ("IMGFLOW_METRICS_ADDR", format!("127.0.0.1:{port}")),
            ("IMGFLOW_DETECTOR", "rekognition".into()),
            // As in production: the label stage's HEAD and content-index writes run under
            // its grants too.
            ("IMGFLOW_REUSE_COPIES", "true".into()),
        ]);
        children.push(spawn_binary(
            &format!("imgflow-{stage}"),
            &prefix,
            &logs,
            &env,
        ));
        ready_urls.push((
            stage.as_str().to_owned(),
            format!("http://127.0.0.1:{port}/readyz"),
        ));
    }
    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let mut env = common(&keys["api"]);
    env.extend([
        ("IMGFLOW_API_ADDR", format!("127.0.0.1:{api_port}")),
        ("IMGFLOW_API_KEY", API_KEY.into()),
    ]);
    children.push(spawn_binary("imgflow-api", &prefix, &logs, &env));
    ready_urls.push(("api".into(), format!("{api}/readyz")));

    // Each step names itself, so that a run that fails says where (the negative runs check it).
    let mut step = "ready";
    let outcome: Result<(), String> = async {
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let answer = http
                .get(&url)
                .header("x-api-key", API_KEY)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            if status.is_success() {
                Ok(body)
            } else {
                Err(format!("GET {url}: {status} {body}"))
            }
        }
    };

    // Every process ready: a worker once it has received from its queue.
    for (who, url) in &ready_urls {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            match get(url.clone()).await {
                Ok(_) => break,
                // A refusal will not heal by waiting.
                Err(e) if e.contains("AccessDenied") || tokio::time::Instant::now() > deadline => {
                    return Err(format!("{who} never became ready: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    // An upload through the API, and a drop into S3 by the operator's CLI.
    step = "upload";
    let posted: Value = http
        .post(format!("{api}/images"))
        .header("x-api-key", API_KEY)
        .header("content-type", "image/png")
        .body(photo("chelsea.png"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let posted_id = posted["id"]
        .as_str()
        .ok_or(format!("POST /images answered {posted}"))?
        .to_owned();
    let dir = logs.join("submit");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rocket.jpg"), photo("rocket.jpg")).unwrap();
    let operator = common(&keys["operator"]);
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(imgflow_e2e::bin_dir().join("imgflow"));
        command
            .args(args)
            .env("IMGFLOW_PREFIX", &prefix)
            .env("RUST_BACKTRACE", "0")
            .envs(operator.iter().map(|(k, v)| (*k, v.as_str())));
        let out = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("imgflow {}: {text}", args.join(" ")))
        }
    };
    // (Blocking calls: nothing else runs in this test's process.)
    step = "submit";
    let submitted = cli(&["submit", dir.join("rocket.jpg").to_str().unwrap(), "--wait"])?;
    if !submitted.contains("labeled") {
        return Err(format!("imgflow submit --wait: {submitted}"));
    }

    // A notification for an object that is gone by the time ingest reads it.
    admin_clients
        .sqs
        .send_message()
        .queue_url(&provisioned.queue_urls[&Stage::Ingest])
        .message_body(
            json!({"Records": [{
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
                "eventTime": "2026-11-27T00:00:00.000Z", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": names.bucket},
                       "object": {"key": "incoming/deleted.png", "size": 100, "eTag": "0123456789abcdef0123456789abcdef"}}
            }]})
            .to_string(),
        )
        .send()
        .await
        .map_err(|e| format!("admin SendMessage: {e}"))?;
    // A message no stage can parse, for the dead-letter commands.
    admin_clients
        .sqs
        .send_message()
        .queue_url(&provisioned.queue_urls[&Stage::Ingest])
        .message_body("this is not an S3 event")
        .send()
        .await
        .map_err(|e| format!("admin SendMessage: {e}"))?;

    // The posted image ends labeled, the deleted object missing, read through the API.
    step = "labeled";
    let status_of = |id: String| {
        let api = api.clone();
        async move {
            let body = get(format!("{api}/images/{id}?format=json")).await.ok()?;
            let record: Value = serde_json::from_str(&body).ok()?;
            Some(record["status"].as_str()?.to_owned())
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let missing_id = imgflow_messages::image_id(
        &names.bucket,
        "incoming/deleted.png",
        "0123456789abcdef0123456789abcdef",
    );
    loop {
        let posted = status_of(posted_id.clone()).await;
        let missing = status_of(missing_id.clone()).await;
        if posted.as_deref() == Some("labeled") && missing.as_deref() == Some("missing") {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "after 60 s the posted image is {posted:?} (want labeled) and the deleted one \
                 {missing:?} (want missing); logs in {}",
                logs.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    step = "thumbnail";
    // Its thumbnail branch joined its labels: the item completes, and the API serves the
    // stored JPEG (from thumbnails/, under the API's grants).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let body = get(format!("{api}/images/{posted_id}?format=json")).await?;
        let record: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if record["completed_at"].is_string() && record["thumbnail"]["key"].is_string() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the posted image never completed: {record}; logs in {}",
                logs.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let thumbnail = http
        .get(format!("{api}/images/{posted_id}/thumbnail"))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let content_type = thumbnail.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    if content_type != "image/jpeg" {
        let body = thumbnail.text().await.unwrap_or_default();
        return Err(format!("GET thumbnail answered {content_type}: {body}"));
    }

    // The console's pages and JSON.
    step = "console";
    for path in [
        "/".to_owned(),
        "/api/pipeline".to_owned(),
        "/images".to_owned(),
        format!("/images/{posted_id}"),
        format!("/images/{posted_id}/thumbnail"),
        "/dlq/ingest".to_owned(),
    ] {
        get(format!("{api}{path}")).await?;
    }

    // The operator inspects the dead letter and replays it; it comes back.
    step = "replay";
    let dead_letters = until("the dead letter", Duration::from_secs(30), || {
        let out = cli(&["dlq", "inspect", "--stage", "ingest"]);
        async move {
            match out {
                Ok(text) if text.contains("this is not an S3 event") => Some(Ok(text)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        }
    })
    .await?;
    if !dead_letters.contains("malformed") {
        return Err(format!("dlq inspect shows no reason: {dead_letters}"));
    }
    let replayed = cli(&["dlq", "replay", "--stage", "ingest"])?;
    if !replayed.contains("moved 1 to") {
        return Err(format!("dlq replay moved nothing: {replayed}"));
    }
    let status = cli(&["status"])?;
    if !status.contains("ingest") {
        return Err(format!(
            "imgflow status: {status} (after replay: {replayed})"
        ));
    }

    // Replayed, the malformed message is dead-lettered again; the operator purges it.
    step = "purge";
    within("the replayed message back in the dead-letter queue", || {
        let depth = cli(&["status"]);
        async move { depth.ok().filter(|text| dead_letters_of(text, "ingest") == Some(1)) }
    })
    .await?;
    cli(&["dlq", "purge", "--stage", "ingest", "--yes"])?;
    within("an empty ingest dead-letter queue", || {
        let depth = cli(&["status"]);
        async move { depth.ok().filter(|text| dead_letters_of(text, "ingest") == Some(0)) }
    })
    .await?;

    // An object whose event was lost (notifications off while it was put): backfill, under the
    // operator's grants, sends it, and it ends labeled.
    step = "backfill";
    admin_clients
        .s3
        .put_bucket_notification_configuration()
        .bucket(&names.bucket)
        .notification_configuration(aws_sdk_s3::types::NotificationConfiguration::builder().build())
        .send()
        .await
        .map_err(|e| format!("admin: notifications off: {e}"))?;
    let put = admin_clients
        .s3
        .put_object()
        .bucket(&names.bucket)
        .key("incoming/before.jpg")
        .body(photo("rocket.jpg").into())
        .send()
        .await
        .map_err(|e| format!("admin PutObject: {e}"))?;
    provision(&admin_clients, &names, &ProvisionSettings::default())
        .await
        .map_err(|e| format!("admin: notifications back on: {e}"))?;
    let before_id = imgflow_messages::image_id(
        &names.bucket,
        "incoming/before.jpg",
        put.e_tag().unwrap_or_default().trim_matches('"'),
    );
    let sent = cli(&["backfill"])?;
    let labeled_at = within("the backfilled image labeled", || {
        let record = get(format!("{api}/images/{before_id}?format=json"));
        async move {
            let record: Value = serde_json::from_str(&record.await.ok()?).ok()?;
            (record["status"] == "labeled").then(|| record["labeled_at"].clone())
        }
    })
    .await
    .map_err(|e| format!("{e} (imgflow backfill said: {sent})"))?;

    // A relabel, under the operator's grants, labels it again.
    step = "relabel";
    let relabeled = cli(&["relabel", "--detector", "rekognition"])?;
    within("the image labeled again", || {
        let record = get(format!("{api}/images/{before_id}?format=json"));
        let labeled_at = labeled_at.clone();
        async move {
            let record: Value = serde_json::from_str(&record.await.ok()?).ok()?;
            (record["status"] == "labeled" && record["labeled_at"] != labeled_at).then_some(())
        }
    })
    .await
    .map_err(|e| format!("{e} (imgflow relabel said: {relabeled})"))?;

    // The posted image's object deleted: ingest marks it deleted and removes its thumbnail.
    step = "delete";
    let record: Value = serde_json::from_str(&get(format!("{api}/images/{posted_id}?format=json")).await?)
        .map_err(|e| e.to_string())?;
    let key = record["key"].as_str().ok_or(format!("no key in {record}"))?.to_owned();
    let thumbnail = record["thumbnail"]["key"].as_str().ok_or(format!("no thumbnail in {record}"))?.to_owned();
    admin_clients
        .s3
        .delete_object()
        .bucket(&names.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| format!("admin DeleteObject: {e}"))?;
    let s3 = admin_clients.s3.clone();
    let bucket = names.bucket.clone();
    within("the deleted image marked deleted and its thumbnail removed", || {
        let record = get(format!("{api}/images/{posted_id}?format=json"));
        let head = s3.head_object().bucket(&bucket).key(&thumbnail).send();
        async move {
            let record: Value = serde_json::from_str(&record.await.ok()?).ok()?;
            let thumbnail_gone = head.await.is_err();
            (record["status"] == "deleted" && thumbnail_gone).then_some(())
        }
    })
    .await?;

    // Still ready after all of it.
    step = "still ready";
    for (who, url) in &ready_urls {
        get(url.clone())
            .await
            .map_err(|e| format!("{who} not ready at the end: {e}"))?;
    }
    Ok(())
    }
    .await;
    drop(children);
    outcome.map_err(|e| format!("step `{step}`: {e}; logs in {}", logs.display()))
}

/// Polls `check` every 250 ms for up to 60 s: its value, or what it waited for.
async fn within<T, F, Fut>(what: &str, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("after 60 s, still waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The dead-letter count `imgflow status` shows for `stage`.
fn dead_letters_of(status: &str, stage: &str) -> Option<u64> {
    let row = status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(stage))?;
    // STAGE, WAITING, IN FLIGHT, DLQ.
    row.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binary_works_with_exactly_its_roles_grants() {
    run_deployment("e2e-iam", None).await.unwrap();
}

/// The test of the test: one action fewer in one role, and the same run fails at the step that
/// needs it, with the denial in the log of the process that holds the role (or the CLI's
/// answer, for the operator).
async fn assert_caught(test: &str, removal: (&'static str, &'static str), step: &str, who: &str) {
    let error = run_deployment(test, Some(removal)).await.unwrap_err();
    assert!(
        error.starts_with(&format!("step `{step}`: ")),
        "{removal:?} should fail at step `{step}`: {error}"
    );
    let logs = log_dir_of(&error);
    let said = match who {
        "operator" => error.clone(),
        process => std::fs::read_to_string(logs.join(format!("imgflow-{process}.log"))).unwrap(),
    };
    assert!(
        said.contains("AccessDenied"),
        "{removal:?}: no AccessDenied from {who}: {error}"
    );
}

/// The log directory a failed run names.
fn log_dir_of(error: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(error.rsplit("; logs in ").next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_role_without_receive_is_caught_when_it_starts() {
    assert_caught(
        "e2e-iam-neg",
        ("StorePolicy", "sqs:ReceiveMessage"),
        "ready",
        "store",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_role_without_put_object_is_caught_at_the_upload() {
    assert_caught(
        "e2e-iam-api",
        ("ApiPolicy", "s3:PutObject"),
        "upload",
        "api",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_role_without_detect_labels_is_caught_at_the_first_image() {
    assert_caught(
        "e2e-iam-label",
        ("LabelPolicy", "rekognition:DetectLabels"),
        "submit",
        "label",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_role_without_put_object_is_caught_at_the_join() {
    assert_caught(
        "e2e-iam-thumb",
        ("ThumbnailPolicy", "s3:PutObject"),
        "thumbnail",
        "thumbnail",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_role_without_delete_object_is_caught_at_a_deletion() {
    assert_caught(
        "e2e-iam-ingest",
        ("IngestPolicy", "s3:DeleteObject"),
        "delete",
        "ingest",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_without_send_is_caught_at_the_replay() {
    assert_caught(
        "e2e-iam-op-send",
        ("OperatorPolicy", "sqs:SendMessage"),
        "replay",
        "operator",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_without_purge_is_caught_at_the_purge() {
    assert_caught(
        "e2e-iam-op-purge",
        ("OperatorPolicy", "sqs:PurgeQueue"),
        "purge",
        "operator",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_without_list_bucket_versions_is_caught_at_the_backfill() {
    assert_caught(
        "e2e-iam-op-list",
        ("OperatorPolicy", "s3:ListBucketVersions"),
        "backfill",
        "operator",
    )
    .await;
}

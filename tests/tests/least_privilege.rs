//! Least privilege, enforced: every binary runs under an IAM user whose policy is exactly its
//! role's policy in `deploy/cloudformation/imgflow.yaml` (resolved for this test's account,
//! region and prefix, not copied), the CLI under the template's operator policy, against a
//! private emulator that enforces IAM (moto's `INITIAL_NO_AUTH_ACTION_COUNT`, switched on once
//! the test has set everything up). A missing grant shows up here as an AccessDenied.
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
use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use imgflow_aws::AwsClients;
use imgflow_e2e::{free_port, log_dir, photo, sdk_config_at, spawn_binary, until};
use imgflow_operations::provision::{provision, ProvisionSettings};
use imgflow_runtime::config::{Names, Stage, COMPLETED_TOPIC};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const API_KEY: &str = "least-privilege-test-key-0123456789";

/// A moto server of this test's own: enforcing IAM is process-wide, so the shared emulator
/// cannot be used. Killed when dropped.
struct PrivateEmulator {
    endpoint: String,
    _child: tokio::process::Child,
}

impl PrivateEmulator {
    async fn start(logs: &std::path::Path) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".venv-emulator/bin/python");
        assert!(
            python.exists(),
            "{} is missing: scripts/emulator start installs it",
            python.display()
        );
        let port = free_port();
        std::fs::create_dir_all(logs).unwrap();
        let log = std::fs::File::create(logs.join("moto.log")).unwrap();
        let child = tokio::process::Command::new(python)
            .arg(root.join("scripts/moto_server.py"))
            .args(["127.0.0.1", &port.to_string()])
            .env("MOTO_PORT", port.to_string())
            // Keys and policies enforced, moto's signature recomputation skipped (see
            // scripts/moto_server.py).
            .env("IMGFLOW_EMULATOR_TRUST_SIGNATURES", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let probe = format!("{endpoint}/moto-api/");
        until("the private emulator", Duration::from_secs(30), || {
            let probe = probe.clone();
            async move { reqwest::get(&probe).await.is_ok().then_some(()) }
        })
        .await;
        Self {
            endpoint,
            _child: child,
        }
    }

    async fn config(&self, key: &AccessKey) -> aws_config::SdkConfig {
        sdk_config_at(&self.endpoint, &key.id, &key.secret).await
    }

    async fn clients(&self, key: &AccessKey) -> AwsClients {
        AwsClients::new(&self.config(key).await)
    }

    /// From now on every request needs a known access key whose policy allows it.
    async fn enforce_iam(&self) {
        let answer = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            .body("0")
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }
}

#[derive(Clone)]
struct AccessKey {
    id: String,
    secret: String,
}

impl AccessKey {
    fn env(&self) -> [(&'static str, String); 2] {
        [
            ("AWS_ACCESS_KEY_ID", self.id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ]
    }
}

/// The template's resources under one prefix: intrinsic functions resolved to the names and
/// ARNs CloudFormation would give them in this account and region.
struct Stack {
    template: Value,
    prefix: String,
    incoming: String,
}

impl Stack {
    fn load(prefix: &str) -> Self {
        let path = format!(
            "{}/../deploy/cloudformation/imgflow.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        Self {
            template: serde_yaml_ng::from_str(&text).unwrap(),
            prefix: prefix.to_owned(),
            incoming: "incoming/".to_owned(),
        }
    }

    fn resource(&self, logical: &str) -> &Value {
        let r = &self.template["Resources"][logical];
        assert!(!r.is_null(), "no resource {logical} in the template");
        r
    }

    fn parameter(&self, name: &str) -> String {
        match name {
            "Prefix" => self.prefix.clone(),
            "IncomingPrefix" => self.incoming.clone(),
            "AWS::AccountId" => ACCOUNT.into(),
            "AWS::Region" => REGION.into(),
            "AWS::Partition" => "aws".into(),
            other => panic!("the test does not know parameter {other}"),
        }
    }

    /// A resource's physical name, from its name property.
    fn name(&self, logical: &str) -> String {
        let props = &self.resource(logical)["Properties"];
        for key in ["QueueName", "TopicName", "TableName", "BucketName"] {
            if let Some(v) = props.get(key) {
                return self.text(v);
            }
        }
        panic!("{logical} has no name property")
    }

    fn arn(&self, logical: &str) -> String {
        let name = self.name(logical);
        match self.resource(logical)["Type"].as_str().unwrap() {
            "AWS::SQS::Queue" => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
            "AWS::SNS::Topic" => format!("arn:aws:sns:{REGION}:{ACCOUNT}:{name}"),
            "AWS::DynamoDB::Table" => format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"),
            "AWS::S3::Bucket" => format!("arn:aws:s3:::{name}"),
            other => panic!("no ARN rule for {other}"),
        }
    }

    /// `Ref` of a parameter or resource.
    fn reference(&self, name: &str) -> String {
        if self.template["Parameters"].get(name).is_some() || name.starts_with("AWS::") {
            return self.parameter(name);
        }
        match self.resource(name)["Type"].as_str().unwrap() {
            // A topic's Ref is its ARN; a bucket's and a table's, the name.
            "AWS::SNS::Topic" => self.arn(name),
            _ => self.name(name),
        }
    }

    fn attribute(&self, logical: &str, attribute: &str) -> String {
        match attribute {
            "Arn" => self.arn(logical),
            "QueueName" => self.name(logical),
            other => panic!("no rule for {logical}.{other}"),
        }
    }

    fn text(&self, value: &Value) -> String {
        match self.resolve(value) {
            Value::String(s) => s,
            other => panic!("expected a string, got {other}"),
        }
    }

    fn resolve(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) if map.contains_key("Ref") => {
                Value::String(self.reference(map["Ref"].as_str().unwrap()))
            }
            Value::Object(map) if map.contains_key("Fn::GetAtt") => {
                let parts = map["Fn::GetAtt"].as_array().unwrap();
                Value::String(
                    self.attribute(parts[0].as_str().unwrap(), parts[1].as_str().unwrap()),
                )
            }
            Value::Object(map) if map.contains_key("Fn::Sub") => {
                let mut text = map["Fn::Sub"].as_str().unwrap().to_owned();
                while let Some(start) = text.find("${") {
                    let end = start + text[start..].find('}').unwrap();
                    let variable = &text[start + 2..end];
                    let value = match variable.split_once('.') {
                        Some((logical, attribute)) => self.attribute(logical, attribute),
                        None => self.reference(variable),
                    };
                    text.replace_range(start..=end, &value);
                }
                Value::String(text)
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.resolve(v)).collect()),
            other => other.clone(),
        }
    }

    /// A managed policy's document as IAM would hold it, with SNS and DynamoDB statements
    /// widened to `*` (see the module docs) and `without` (an action) taken out.
    fn policy(&self, logical: &str, without: Option<&str>) -> String {
        let mut document = self.resolve(&self.resource(logical)["Properties"]["PolicyDocument"]);
        for statement in document["Statement"].as_array_mut().unwrap() {
            let actions: Vec<String> = match &statement["Action"] {
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
                Value::String(s) => vec![s.clone()],
                other => panic!("action {other}"),
            };
            let kept: Vec<String> = actions
                .iter()
                .filter(|a| Some(a.as_str()) != without)
                .flat_map(|a| {
                    let batch = BATCH_ALIASES
                        .iter()
                        .find(|(single, _)| single == a)
                        .map(|(_, batch)| batch.to_string());
                    std::iter::once(a.clone()).chain(batch)
                })
                .collect();
            if actions.iter().any(|a| {
                a.starts_with("sns:") || a.starts_with("dynamodb:") || a == "sqs:GetQueueUrl"
            }) {
                statement["Resource"] = json!("*");
            }
            statement["Action"] = json!(kept);
        }
        let statements = document["Statement"].as_array_mut().unwrap();
        statements.retain(|s| !s["Action"].as_array().unwrap().is_empty());
        document.to_string()
    }
}

/// AWS authorizes each batch call with its single-message action; moto asks for its own.
const BATCH_ALIASES: &[(&str, &str)] = &[
    ("sqs:DeleteMessage", "sqs:DeleteMessageBatch"),
    (
        "sqs:ChangeMessageVisibility",
        "sqs:ChangeMessageVisibilityBatch",
    ),
    ("sqs:SendMessage", "sqs:SendMessageBatch"),
    ("sns:Publish", "sns:PublishBatch"),
];

/// A policy mistake to inject: this action removed from this policy.
type Removal = Option<(&'static str, &'static str)>;

async fn create_user(iam: &aws_sdk_iam::Client, name: &str, policy: &str) -> AccessKey {
    iam.create_user().user_name(name).send().await.unwrap();
    iam.put_user_policy()
        .user_name(name)
        .policy_name(name)
        .policy_document(policy)
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    AccessKey {
        id: key.access_key_id,
        secret: key.secret_access_key,
    }
}

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
    let status = cli(&["status"])?;
    if !status.contains("ingest") {
        return Err(format!(
            "imgflow status: {status} (after replay: {replayed})"
        ));
    }

    // Still ready after all of it.
    for (who, url) in &ready_urls {
        get(url.clone())
            .await
            .map_err(|e| format!("{who} not ready at the end: {e}"))?;
    }
    drop(children);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binary_works_with_exactly_its_roles_grants() {
    run_deployment("e2e-iam", None).await.unwrap();
}

/// The test of the test: one action fewer in one role, and the same run says AccessDenied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_missing_one_action_is_caught() {
    let error = run_deployment("e2e-iam-neg", Some(("StorePolicy", "sqs:ReceiveMessage")))
        .await
        .unwrap_err();
    assert!(
        error.contains("store never became ready") && error.contains("AccessDenied"),
        "{error}"
    );
}

//! The least-privilege run's harness: a private emulator that enforces IAM, and the template's
//! policies resolved for one prefix, account and region, as IAM users' policies.
use std::{path::PathBuf, time::Duration};

use imgflow_aws::AwsClients;
use imgflow_e2e::{free_port, sdk_config_at, until};
use serde_json::{json, Value};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// A moto server of this test's own: enforcing IAM is process-wide, so the shared emulator
/// cannot be used. Killed when dropped.
pub struct PrivateEmulator {
    pub endpoint: String,
    _child: tokio::process::Child,
}

impl PrivateEmulator {
    pub async fn start(logs: &std::path::Path) -> Self {
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

    pub async fn config(&self, key: &AccessKey) -> aws_config::SdkConfig {
        sdk_config_at(&self.endpoint, &key.id, &key.secret).await
    }

    pub async fn clients(&self, key: &AccessKey) -> AwsClients {
        AwsClients::new(&self.config(key).await)
    }

    /// From now on every request needs a known access key whose policy allows it.
    pub async fn enforce_iam(&self) {
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
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl AccessKey {
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("AWS_ACCESS_KEY_ID", self.id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ]
    }
}

/// The template's resources under one prefix: intrinsic functions resolved to the names and
/// ARNs CloudFormation would give them in this account and region.
pub struct Stack {
    template: Value,
    prefix: String,
    pub incoming: String,
}

impl Stack {
    pub fn load(prefix: &str) -> Self {
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

    pub fn resource(&self, logical: &str) -> &Value {
        let r = &self.template["Resources"][logical];
        assert!(!r.is_null(), "no resource {logical} in the template");
        r
    }

    pub fn parameter(&self, name: &str) -> String {
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
    pub fn name(&self, logical: &str) -> String {
        let props = &self.resource(logical)["Properties"];
        for key in ["QueueName", "TopicName", "TableName", "BucketName"] {
            if let Some(v) = props.get(key) {
                return self.text(v);
            }
        }
        panic!("{logical} has no name property")
    }

    pub fn arn(&self, logical: &str) -> String {
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
    pub fn reference(&self, name: &str) -> String {
        if self.template["Parameters"].get(name).is_some() || name.starts_with("AWS::") {
            return self.parameter(name);
        }
        match self.resource(name)["Type"].as_str().unwrap() {
            // A topic's Ref is its ARN; a bucket's and a table's, the name.
            "AWS::SNS::Topic" => self.arn(name),
            _ => self.name(name),
        }
    }

    pub fn attribute(&self, logical: &str, attribute: &str) -> String {
        match attribute {
            "Arn" => self.arn(logical),
            "QueueName" => self.name(logical),
            other => panic!("no rule for {logical}.{other}"),
        }
    }

    pub fn text(&self, value: &Value) -> String {
        match self.resolve(value) {
            Value::String(s) => s,
            other => panic!("expected a string, got {other}"),
        }
    }

    pub fn resolve(&self, value: &Value) -> Value {
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
    pub fn policy(&self, logical: &str, without: Option<&str>) -> String {
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
pub const BATCH_ALIASES: &[(&str, &str)] = &[
    ("sqs:DeleteMessage", "sqs:DeleteMessageBatch"),
    (
        "sqs:ChangeMessageVisibility",
        "sqs:ChangeMessageVisibilityBatch",
    ),
    ("sqs:SendMessage", "sqs:SendMessageBatch"),
    ("sns:Publish", "sns:PublishBatch"),
];

/// A policy mistake to inject: this action removed from this policy.
pub type Removal = Option<(&'static str, &'static str)>;

pub async fn create_user(iam: &aws_sdk_iam::Client, name: &str, policy: &str) -> AccessKey {
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

//! deploy/'s files read as data: YAML documents, the CloudFormation template with its
//! intrinsic functions rendered short, and the grants its policies give a role.
use std::collections::{BTreeMap, BTreeSet};

use imgflow_runtime::config::Stage;
use serde_json::Value;

pub fn read_yaml_documents(path: &str) -> Vec<Value> {
    let full = format!("{}/../deploy/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{full}: {e}")))
        .collect()
}

pub fn template() -> Value {
    read_yaml_documents("cloudformation/imgflow.yaml").remove(0)
}

/// Renders the template's long-form intrinsic functions as short strings:
/// `{"Ref": "X"}` → `X`, `{"Fn::GetAtt": ["X", "Arn"]}` → `X.Arn`, `{"Fn::Sub": "s"}` → `s`.
pub fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) if map.contains_key("Ref") => render(&map["Ref"]),
        Value::Object(map) if map.contains_key("Fn::Sub") => render(&map["Fn::Sub"]),
        Value::Object(map) if map.contains_key("Fn::GetAtt") => {
            let parts: Vec<String> = map["Fn::GetAtt"]
                .as_array()
                .unwrap()
                .iter()
                .map(render)
                .collect();
            parts.join(".")
        }
        other => other.to_string(),
    }
}

pub fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(render).collect(),
        other => vec![render(other)],
    }
}

/// The policy documents a role gets: its inline policies and the template's managed
/// policies that list it (directly or under `Fn::If`) in `Roles`.
pub fn policy_documents<'a>(template: &'a Value, role: &str) -> Vec<&'a Value> {
    let resources = template["Resources"].as_object().unwrap();
    let inline = resources[role]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| &p["PolicyDocument"]);
    let managed = resources
        .values()
        .filter(|r| r["Type"] == "AWS::IAM::ManagedPolicy")
        .filter(|r| {
            r["Properties"]["Roles"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|entry| {
                    entry
                        .to_string()
                        .contains(&format!("{{\"Ref\":\"{role}\"}}"))
                })
        })
        .map(|r| &r["Properties"]["PolicyDocument"]);
    inline.chain(managed).collect()
}

/// Action → resources granted by one role.
pub fn grants(template: &Value, role: &str) -> BTreeMap<String, BTreeSet<String>> {
    grants_of(&policy_documents(template, role))
}

/// Action → resources (with their condition) granted by policy documents.
pub fn grants_of(documents: &[&Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for document in documents {
        for statement in document["Statement"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow");
            // A condition narrows (or, removed, widens) a grant: it is part of what is compared.
            let when = statement
                .get("Condition")
                .map(|c| format!(" when {c}"))
                .unwrap_or_default();
            for action in strings(&statement["Action"]) {
                out.entry(action).or_default().extend(
                    strings(&statement["Resource"])
                        .into_iter()
                        .map(|r| format!("{r}{when}")),
                );
            }
        }
    }
    out
}

pub fn expect(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    pairs
        .iter()
        .map(|(action, resources)| {
            (
                action.to_string(),
                resources.iter().map(|r| r.to_string()).collect(),
            )
        })
        .collect()
}

/// The template's parameters that only ECS needs (and the rule EcsNeedsANetwork requires).
pub const ECS_NETWORK: [&str; 5] = [
    "VpcId",
    "SubnetIds",
    "PublicSubnetIds",
    "CertificateArn",
    "AllowedCidr",
];

/// A stage's name in the template's logical ids: `Ingest`, `Label`, ….
pub fn logical(stage: &str) -> String {
    stage[..1].to_uppercase() + &stage[1..]
}

/// A stage's queue in the template: its name, visibility timeout and dead-letter queue's name
/// (names with `${Prefix}`).
pub fn template_queue(t: &Value, stage: Stage) -> (String, u64, String) {
    let props = &t["Resources"][format!("{}Queue", logical(stage.as_str()))]["Properties"];
    let dlq = render(&props["RedrivePolicy"]["deadLetterTargetArn"]).replace(".Arn", "");
    let dlq_name = render(&t["Resources"][&dlq]["Properties"]["QueueName"]);
    (
        render(&props["QueueName"]),
        props["VisibilityTimeout"].as_u64().unwrap(),
        dlq_name,
    )
}

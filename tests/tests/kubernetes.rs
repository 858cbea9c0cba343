//! deploy/k8s as kustomize renders it for one stack (scripts/k8s-overlay, then the real
//! `kubectl kustomize`), checked against the CloudFormation template: every placeholder filled
//! in, each ServiceAccount naming its stage's pod role, every queue, topic, table and bucket
//! the stack's, KEDA reading queue depths with its own read-only role; and the template's
//! Kubernetes-only shape (no ECS at all).
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use imgflow_runtime::config::Stage;
use serde_json::Value;
use support::template::{
    expect, grants, logical, read_yaml_documents, render, template, template_queue, ECS_NETWORK,
};

mod support;

const ACCOUNT: &str = "999999999999";
const REGION: &str = "us-east-2";
const PREFIX: &str = "my-flow";
const NAMESPACE: &str = "flows";
const IMAGE: &str = "999999999999.dkr.ecr.us-east-2.amazonaws.com/my-flow:0123456789ab";
const VPC_CIDR: &str = "172.31.0.0/16";
const INCOMING: &str = "uploads/2024/";

fn kubectl() -> PathBuf {
    PathBuf::from(std::env::var("IMGFLOW_KUBECTL").expect(
        "IMGFLOW_KUBECTL is unset: run scripts/test, or export IMGFLOW_KUBECTL=$(scripts/kubectl)",
    ))
}

fn script(name: &str) -> String {
    format!("{}/../scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs scripts/k8s-overlay with `args` into a fresh directory; its exit code and output.
fn write_overlay(args: &[&str]) -> (i32, String, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("k8s-overlay-{}", uuid::Uuid::new_v4().simple()));
    let out = Command::new("bash")
        .arg(script("k8s-overlay"))
        .args(args)
        .arg(&dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text, dir)
}

/// The overlay of this file's stack, rendered by kustomize: its text and its documents.
fn rendered() -> (String, Vec<Value>) {
    let (code, out, dir) = write_overlay(&[
        "--region",
        REGION,
        "--account",
        ACCOUNT,
        "--prefix",
        PREFIX,
        "--image",
        IMAGE,
        "--vpc-cidr",
        VPC_CIDR,
        "--namespace",
        NAMESPACE,
        "--incoming-prefix",
        INCOMING,
        "--detector",
        "local",
    ]);
    assert_eq!(code, 0, "{out}");
    let render = Command::new(kubectl())
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        render.status.success(),
        "{}",
        String::from_utf8_lossy(&render.stderr)
    );
    let text = String::from_utf8(render.stdout).unwrap();
    let docs = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    (text, docs)
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// A name of the template (`${Prefix}-x`) as this file's stack has it.
fn named(template_name: &str) -> String {
    template_name
        .replace("${Prefix}", PREFIX)
        .replace("${AWS::AccountId}", ACCOUNT)
        .replace("${AWS::Region}", REGION)
}

/// The base's placeholders (`AWS_REGION` is a variable's name, not one).
fn assert_no_placeholder(text: &str) {
    let text = text.replace("AWS_REGION", "");
    for placeholder in ["ACCOUNT_ID", "REGION", "VPC_CIDR"] {
        assert!(
            !text.contains(placeholder),
            "{placeholder} left in:\n{text}"
        );
    }
}

fn container_env(deployment: &Value) -> BTreeMap<String, String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("value").is_some())
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_overlay_fills_in_every_placeholder_with_the_stacks_values() {
    let t = template();
    let (text, docs) = rendered();
    assert_no_placeholder(&text);
    for example in ["123456789012", "eu-west-1", "10.0.0.0/16", "imgflow-images"] {
        assert!(!text.contains(example), "{example} left in:\n{text}");
    }
    // The stack's values are read, never applied.
    assert!(!text.contains("imgflow-stack"));
    for doc in &docs {
        if doc["kind"] == "Namespace" {
            assert_eq!(doc["metadata"]["name"], NAMESPACE);
        } else {
            assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{doc}");
        }
    }
    let config = &find(&docs, "ConfigMap", "imgflow")["data"];
    assert_eq!(config["AWS_REGION"], REGION);
    assert_eq!(config["IMGFLOW_PREFIX"], PREFIX);
    // The stack's IncomingPrefix and Detector, not the base's defaults.
    assert_eq!(config["IMGFLOW_INCOMING_PREFIX"], INCOMING);
    assert_eq!(
        container_env(find(&docs, "Deployment", "imgflow-label"))["IMGFLOW_DETECTOR"],
        "local"
    );
    let resources = &t["Resources"];
    assert_eq!(
        config["IMGFLOW_BUCKET"],
        named(&render(
            &resources["ImagesBucket"]["Properties"]["BucketName"]
        ))
    );
    assert_eq!(
        config["IMGFLOW_TABLE"],
        named(&render(
            &resources["ImagesTable"]["Properties"]["TableName"]
        ))
    );
    assert_eq!(
        config["IMGFLOW_INDEX_TABLE"],
        named(&render(&resources["IndexTable"]["Properties"]["TableName"]))
    );
    let role_arn = |logical_id: &str| {
        format!(
            "arn:aws:iam::{ACCOUNT}:role/{}",
            named(&render(&resources[logical_id]["Properties"]["RoleName"]))
        )
    };
    let topic_arn = |short: &str| format!("arn:aws:sns:{REGION}:{ACCOUNT}:{PREFIX}-{short}");
    let queue_url = |name: &str| format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}");
    for stage in Stage::ALL {
        let name = format!("imgflow-{stage}");
        let account = find(&docs, "ServiceAccount", &name);
        assert_eq!(
            account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            role_arn(&format!("{}PodRole", logical(stage.as_str())))
        );
        let deployment = find(&docs, "Deployment", &name);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], IMAGE);
        assert_eq!(container["command"][0], name);
        let env = container_env(deployment);
        let (queue, _, dlq) = template_queue(&t, stage);
        assert_eq!(env["IMGFLOW_QUEUE_URL"], queue_url(&named(&queue)));
        assert_eq!(env["IMGFLOW_DLQ_URL"], queue_url(&named(&dlq)));
        assert_eq!(env["IMGFLOW_TOPIC_ARN"], topic_arn(stage.output_topic()));
        if stage == Stage::Store {
            assert_eq!(
                env["IMGFLOW_COMPLETED_TOPIC_ARN"],
                topic_arn("image-completed")
            );
        }
        // Probes on the metrics port, which listens beyond loopback.
        let port = container["ports"][0]["containerPort"].as_u64().unwrap();
        assert_eq!(env["IMGFLOW_METRICS_ADDR"], format!("0.0.0.0:{port}"));
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        // KEDA: the stage's queue, read with the read-only scaler role.
        let scaled = find(&docs, "ScaledObject", &name);
        assert_eq!(scaled["spec"]["scaleTargetRef"]["name"], name);
        let trigger = &scaled["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "aws-sqs-queue");
        assert_eq!(trigger["metadata"]["queueURL"], env["IMGFLOW_QUEUE_URL"]);
        assert_eq!(trigger["metadata"]["awsRegion"], REGION);
        assert_eq!(trigger["authenticationRef"]["name"], name);
        let identity = &find(&docs, "TriggerAuthentication", &name)["spec"]["podIdentity"];
        assert_eq!(identity["provider"], "aws");
        assert_eq!(identity["roleArn"], role_arn("KedaScalerRole"));
        // roleArn and identityOwner exclude each other.
        assert!(identity.get("identityOwner").is_none());
    }
    let api = find(&docs, "Deployment", "imgflow-api");
    assert_eq!(
        api["spec"]["template"]["spec"]["containers"][0]["image"],
        IMAGE
    );
    assert_eq!(
        find(&docs, "ServiceAccount", "imgflow-api")["metadata"]["annotations"]
            ["eks.amazonaws.com/role-arn"],
        role_arn("ApiPodRole")
    );
    // The label pod holds the local detector, as the ECS task (2 GiB) does.
    let label = find(&docs, "Deployment", "imgflow-label");
    assert_eq!(
        label["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "2Gi"
    );
}

#[test]
fn the_api_admits_the_load_balancer_controllers_traffic_from_the_vpc() {
    let (_, docs) = rendered();
    let policy = find(&docs, "NetworkPolicy", "imgflow-api");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "api"
    );
    let ingress = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1, "one rule: the API port");
    assert_eq!(ingress[0]["ports"][0]["port"], 8080);
    let sources = ingress[0]["from"].as_array().unwrap();
    // Pods of the cluster (an in-cluster Ingress controller), and the VPC's addresses: an ALB in
    // IP mode sends its traffic and health checks from its own interfaces there, not from pods.
    assert!(sources.iter().any(|s| s["namespaceSelector"].is_object()));
    assert!(
        sources.iter().any(|s| s["ipBlock"]["cidr"] == VPC_CIDR),
        "{sources:?}"
    );
}

#[test]
fn the_base_lists_every_manifest_and_the_example_renders() {
    let base = &read_yaml_documents("k8s/base/kustomization.yaml")[0];
    let listed: BTreeSet<&str> = base["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let dir = format!("{}/../deploy/k8s/base", env!("CARGO_MANIFEST_DIR"));
    let files: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "kustomization.yaml")
        .collect();
    assert_eq!(
        files,
        listed
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    let example = format!("{}/../deploy/k8s/example", env!("CARGO_MANIFEST_DIR"));
    let render = Command::new(kubectl())
        .args(["kustomize", &example])
        .output()
        .unwrap();
    assert!(
        render.status.success(),
        "{}",
        String::from_utf8_lossy(&render.stderr)
    );
    assert_no_placeholder(&String::from_utf8(render.stdout).unwrap());
}

#[test]
fn the_overlay_script_refuses_values_the_stack_cannot_have() {
    let good = [
        ("--region", REGION),
        ("--account", ACCOUNT),
        ("--prefix", PREFIX),
        ("--image", IMAGE),
        ("--vpc-cidr", VPC_CIDR),
        ("--incoming-prefix", INCOMING),
        ("--detector", "local"),
    ];
    for (flag, bad, says) in [
        ("--prefix", "My_Flow", "--prefix is 1-24"),
        (
            "--prefix",
            "a-prefix-longer-than-24-chars",
            "--prefix is 1-24",
        ),
        ("--account", "12345", "--account is 12 digits"),
        ("--region", "Europe", "--region is a region"),
        ("--vpc-cidr", "10.0.0.0", "--vpc-cidr is a CIDR"),
        ("--image", "imgflow", "--image is a registry/name:tag"),
        (
            "--incoming-prefix",
            "incoming",
            "--incoming-prefix is a folder",
        ),
        (
            "--incoming-prefix",
            "/abs/",
            "--incoming-prefix is a folder",
        ),
        ("--detector", "yolo", "--detector is rekognition or local"),
    ] {
        let args: Vec<&str> = good
            .iter()
            .flat_map(|(f, v)| [*f, if *f == flag { bad } else { *v }])
            .collect();
        let (code, out, dir) = write_overlay(&args);
        assert_eq!(code, 2, "{flag} {bad}: {out}");
        assert!(out.contains(says), "{flag} {bad}: {out}");
        assert!(!dir.exists(), "nothing written for {flag} {bad}");
    }
}

#[test]
fn kubernetes_roles_trust_only_their_service_account() {
    let t = template();
    for stage in Stage::ALL.iter().map(|s| s.as_str()).chain(["api"]) {
        let role = &t["Resources"][format!("{}PodRole", logical(stage))];
        assert_eq!(role["Condition"], "OnKubernetes");
        let trust = role["Properties"]["AssumeRolePolicyDocument"]["Fn::Sub"][0]
            .as_str()
            .unwrap();
        let trust: Value = serde_json::from_str(trust).unwrap();
        let statements = trust["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1, "{stage}: KEDA has its own role");
        assert_eq!(statements[0]["Action"], "sts:AssumeRoleWithWebIdentity");
        assert_eq!(
            statements[0]["Condition"]["StringEquals"]["${Issuer}:sub"],
            format!("system:serviceaccount:${{KubernetesNamespace}}:imgflow-{stage}")
        );
    }
}

#[test]
fn keda_reads_queue_depths_with_a_role_that_can_do_nothing_else() {
    let t = template();
    let role = &t["Resources"]["KedaScalerRole"];
    assert_eq!(role["Condition"], "OnKubernetes");
    let statements = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Action"], "sts:AssumeRole");
    assert_eq!(
        render(&statements[0]["Principal"]["AWS"]),
        "KedaOperatorRoleArn"
    );
    let queues: Vec<String> = Stage::ALL
        .iter()
        .map(|s| format!("{}Queue.Arn", logical(s.as_str())))
        .collect();
    let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
    assert_eq!(
        grants(&t, "KedaScalerRole"),
        expect(&[("sqs:GetQueueAttributes", &queues)])
    );
    // And no stage role reads queue attributes any more: KEDA was the only reader.
    for stage in Stage::ALL {
        let role = format!("{}PodRole", logical(stage.as_str()));
        assert!(
            !grants(&t, &role).contains_key("sqs:GetQueueAttributes"),
            "{role}"
        );
    }
}

/// Conditions that hold only with ECS: `OnEcs` and those that require one of them (`And`).
fn ecs_conditions(t: &Value) -> BTreeSet<String> {
    let conditions = t["Conditions"].as_object().unwrap();
    let mut ecs_only = BTreeSet::from(["OnEcs".to_owned()]);
    loop {
        let more: Vec<String> = conditions
            .iter()
            .filter(|(name, _)| !ecs_only.contains(*name))
            .filter(|(_, definition)| {
                definition["Fn::And"].as_array().is_some_and(|terms| {
                    terms.iter().any(|term| {
                        term["Condition"]
                            .as_str()
                            .is_some_and(|c| ecs_only.contains(c))
                    })
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        if more.is_empty() {
            return ecs_only;
        }
        ecs_only.extend(more);
    }
}

#[test]
fn without_ecs_the_stack_has_no_cluster_service_load_balancer_or_scaling() {
    let t = template();
    let ecs_only = ecs_conditions(&t);
    assert!(ecs_only.contains("IngestScalesToZero"), "{ecs_only:?}");
    let needs_ecs = |id: &str, resource: &Value| {
        let kind = resource["Type"].as_str().unwrap();
        let text = resource.to_string();
        kind.starts_with("AWS::ECS::")
            || kind.starts_with("AWS::ElasticLoadBalancingV2::")
            || kind.starts_with("AWS::ApplicationAutoScaling::")
            || kind.starts_with("AWS::EC2::")
            || kind == "AWS::Logs::LogGroup"
            || kind == "AWS::Logs::MetricFilter"
            || id.ends_with("TaskRole")
            || id == "ExecutionRole"
            // Alarms on ECS or load balancer metrics, or that scale a service.
            || text.contains("AWS/ECS")
            || text.contains("ECS/ContainerInsights")
            || text.contains("AWS/ApplicationELB")
            || text.contains("WakeFromZero")
            || text.contains("DetectorAccessErrors\"")
    };
    let mut checked = 0;
    for (id, resource) in t["Resources"].as_object().unwrap() {
        if id == "Dashboard" || !needs_ecs(id, resource) {
            continue;
        }
        checked += 1;
        let condition = resource["Condition"].as_str().unwrap_or("");
        assert!(
            ecs_only.contains(condition),
            "{id} is created without ECS (condition {condition:?})"
        );
    }
    assert!(checked >= 40, "{checked}");
    // Outputs that name them exist only with ECS too.
    for name in ["ConsoleUrl", "LoadBalancerDns", "Cluster", "ApiTaskRoleArn"] {
        assert_eq!(t["Outputs"][name]["Condition"], "OnEcs", "{name}");
    }
    // The stage policies attach to the task roles only where those exist.
    for service in Stage::ALL
        .iter()
        .map(|s| logical(s.as_str()))
        .chain(["Api".to_owned()])
    {
        let roles = &t["Resources"][format!("{service}Policy")]["Properties"]["Roles"];
        for entry in roles.as_array().unwrap() {
            assert!(entry.get("Fn::If").is_some(), "{service}Policy: {entry}");
        }
    }
}

#[test]
fn ecs_requires_its_network_and_kubernetes_only_requires_a_cluster() {
    let t = template();
    let parameters = &t["Parameters"];
    assert_eq!(parameters["Ecs"]["Default"], "enabled");
    for name in ECS_NETWORK {
        assert_eq!(parameters[name]["Default"], "", "{name} is optional");
    }
    let rule = &t["Rules"]["EcsNeedsANetwork"];
    assert_eq!(
        rule["RuleCondition"].to_string(),
        r#"{"Fn::Equals":[{"Ref":"Ecs"},"enabled"]}"#
    );
    let asserted: BTreeSet<String> = rule["Assertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let test = &a["Assert"]["Fn::Not"][0];
            let inner = test
                .get("Fn::Equals")
                .or_else(|| test.get("Fn::Contains"))
                .unwrap();
            assert_eq!(inner[1], "", "{a}");
            render(&inner[0])
        })
        .collect();
    assert_eq!(
        asserted,
        ECS_NETWORK
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    let rule = &t["Rules"]["SomethingRunsTheStages"];
    assert!(rule["Assertions"][0]
        .to_string()
        .contains("OidcProviderArn"));
}

//! deploy/ checked against itself and against `imgflow provision`: each task role's exact
//! permissions (a widened one fails here), the emulator resources against the template, and
//! the Kubernetes manifests against the template's queue names.
use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sqs::types::QueueAttributeName;
use imgflow_e2e::TestPipeline;
use imgflow_runtime::config::Stage;
use serde_json::Value;
use support::template::{
    expect, grants, grants_of, policy_documents, render, strings, template, template_queue,
    ECS_NETWORK,
};

mod support;

const INCOMING: &str = "arn:${AWS::Partition}:s3:::${ImagesBucket}/${IncomingPrefix}*";
const THUMBNAILS: &str = "arn:${AWS::Partition}:s3:::${ImagesBucket}/thumbnails/*";
const API_UPLOADS: &str = "arn:${AWS::Partition}:s3:::${ImagesBucket}/${IncomingPrefix}api/*";

/// `s3:ListBucket` on the bucket for the incoming prefix only: S3 then answers 404 (not 403)
/// for a deleted object, and nothing else of the bucket can be listed.
fn list_served() -> String {
    let condition = serde_json::json!({"StringLike": {"s3:prefix": [{"Fn::Sub": "${IncomingPrefix}*"}, "thumbnails/*"]}});
    format!("arn:${{AWS::Partition}}:s3:::${{ImagesBucket}} when {condition}")
}

fn list_incoming() -> String {
    let condition =
        serde_json::json!({"StringLike": {"s3:prefix": [{"Fn::Sub": "${IncomingPrefix}*"}]}});
    format!("arn:${{AWS::Partition}}:s3:::${{ImagesBucket}} when {condition}")
}

#[test]
fn each_task_role_has_exactly_the_calls_its_stage_makes() {
    let t = template();
    let consume = |queue: &'static str| -> [(&'static str, Vec<&'static str>); 3] {
        [
            ("sqs:ReceiveMessage", vec![queue]),
            ("sqs:DeleteMessage", vec![queue]),
            ("sqs:ChangeMessageVisibility", vec![queue]),
        ]
    };
    let list = list_incoming();
    let list = list.as_str();
    let mut ingest: Vec<(&str, Vec<&str>)> = consume("IngestQueue.Arn").into();
    ingest.extend([
        ("s3:ListBucket", vec![list]),
        ("s3:GetObject", vec![INCOMING]),
        ("s3:GetObjectVersion", vec![INCOMING]),
        ("sqs:SendMessage", vec!["IngestDeadLetterQueue.Arn"]),
        ("sns:Publish", vec!["ImageAcceptedTopic"]),
        (
            "dynamodb:UpdateItem",
            vec!["ImagesTable.Arn", "IndexTable.Arn"],
        ),
        // The object ledger (read, then a conditional put), and why a revival was refused.
        (
            "dynamodb:GetItem",
            vec!["ImagesTable.Arn", "IndexTable.Arn"],
        ),
        ("dynamodb:PutItem", vec!["IndexTable.Arn"]),
        // A deleted object's label-index entries, and its images' thumbnails.
        ("dynamodb:BatchWriteItem", vec!["IndexTable.Arn"]),
        ("s3:DeleteObject", vec![THUMBNAILS]),
    ]);
    let mut label: Vec<(&str, Vec<&str>)> = consume("LabelQueue.Arn").into();
    label.extend([
        ("s3:ListBucket", vec![list]),
        ("s3:GetObject", vec![INCOMING]),
        ("s3:GetObjectVersion", vec![INCOMING]),
        // Its dead letters, and a message that waits (a budget, an original) sent again.
        (
            "sqs:SendMessage",
            vec!["LabelDeadLetterQueue.Arn", "LabelQueue.Arn"],
        ),
        ("sns:Publish", vec!["ImageLabeledTopic"]),
        ("dynamodb:GetItem", vec!["ImagesTable.Arn"]),
        (
            "dynamodb:UpdateItem",
            vec!["ImagesTable.Arn", "IndexTable.Arn"],
        ),
        // DetectLabels has no resource-level permissions.
        ("rekognition:DetectLabels", vec!["*"]),
    ]);
    let mut store: Vec<(&str, Vec<&str>)> = consume("StoreQueue.Arn").into();
    store.extend([
        ("sqs:SendMessage", vec!["StoreDeadLetterQueue.Arn"]),
        // Its own output, and the join's when it completes an image.
        (
            "sns:Publish",
            vec!["ImageStoredTopic", "ImageCompletedTopic"],
        ),
        (
            "dynamodb:UpdateItem",
            vec!["ImagesTable.Arn", "IndexTable.Arn"],
        ),
        ("dynamodb:BatchWriteItem", vec!["IndexTable.Arn"]),
    ]);
    let mut thumbnail: Vec<(&str, Vec<&str>)> = consume("ThumbnailQueue.Arn").into();
    thumbnail.extend([
        ("s3:ListBucket", vec![list]),
        ("s3:GetObject", vec![INCOMING]),
        ("s3:GetObjectVersion", vec![INCOMING]),
        // Its thumbnails only; deleting one written while its image was being deleted.
        ("s3:PutObject", vec![THUMBNAILS]),
        ("s3:DeleteObject", vec![THUMBNAILS]),
        ("sqs:SendMessage", vec!["ThumbnailDeadLetterQueue.Arn"]),
        ("sns:Publish", vec!["ImageCompletedTopic"]),
        (
            "dynamodb:UpdateItem",
            vec!["ImagesTable.Arn", "IndexTable.Arn"],
        ),
        // The near-duplicate index: its bands written, then looked up.
        ("dynamodb:Query", vec!["IndexTable.Arn"]),
        ("dynamodb:BatchWriteItem", vec!["IndexTable.Arn"]),
    ]);
    let queues = vec![
        "IngestQueue.Arn",
        "LabelQueue.Arn",
        "StoreQueue.Arn",
        "ThumbnailQueue.Arn",
        "IngestDeadLetterQueue.Arn",
        "LabelDeadLetterQueue.Arn",
        "StoreDeadLetterQueue.Arn",
        "ThumbnailDeadLetterQueue.Arn",
    ];
    let dead_letter_queues = queues[4..].to_vec();
    let list_served = list_served();
    let api = vec![
        // Uploads only under <IncomingPrefix>api/, where the API puts them.
        ("s3:PutObject", vec![API_UPLOADS]),
        ("s3:ListBucket", vec![list_served.as_str()]),
        // The images, and the thumbnails the thumbnail stage stored (it decodes nothing).
        ("s3:GetObject", vec![INCOMING, THUMBNAILS]),
        ("s3:GetObjectVersion", vec![INCOMING, THUMBNAILS]),
        ("dynamodb:GetItem", vec!["ImagesTable.Arn"]),
        ("dynamodb:BatchGetItem", vec!["ImagesTable.Arn"]),
        ("dynamodb:DescribeTable", vec!["ImagesTable.Arn"]),
        // The gallery's indexes and label search; never Scan.
        (
            "dynamodb:Query",
            vec!["${ImagesTable.Arn}/index/*", "IndexTable.Arn"],
        ),
        ("sqs:GetQueueUrl", queues.clone()),
        ("sqs:GetQueueAttributes", queues),
        ("sqs:ReceiveMessage", dead_letter_queues.clone()),
        ("sqs:ChangeMessageVisibility", dead_letter_queues),
    ];
    for (role, wanted) in [
        ("IngestTaskRole", ingest),
        ("LabelTaskRole", label),
        ("StoreTaskRole", store),
        ("ThumbnailTaskRole", thumbnail),
        ("ApiTaskRole", api),
    ] {
        let wanted: Vec<(&str, &[&str])> = wanted.iter().map(|(a, r)| (*a, r.as_slice())).collect();
        assert_eq!(grants(&t, role), expect(&wanted), "{role}");
        // Kubernetes' service-account role gets the very same grants.
        let pod_role = role.replace("TaskRole", "PodRole");
        assert_eq!(grants(&t, &pod_role), expect(&wanted), "{pod_role}");
    }
}

/// Every stage's service name in the template (`Ingest`, …), from `Stage::ALL`, and the API.
fn services() -> Vec<String> {
    Stage::ALL
        .iter()
        .map(|stage| {
            let name = stage.to_string();
            name[..1].to_uppercase() + &name[1..]
        })
        .chain(["Api".to_owned()])
        .collect()
}

#[test]
fn task_roles_have_no_managed_policies_and_trust_only_this_accounts_tasks() {
    let t = template();
    for service in services() {
        let role = format!("{service}TaskRole");
        let role = role.as_str();
        let properties = &t["Resources"][role]["Properties"];
        assert!(
            properties.get("ManagedPolicyArns").is_none(),
            "{role}: a managed policy would widen it past the grants checked above"
        );
        let trust = &properties["AssumeRolePolicyDocument"]["Statement"];
        assert_eq!(trust.as_array().unwrap().len(), 1, "{role}");
        assert_eq!(trust[0]["Principal"]["Service"], "ecs-tasks.amazonaws.com");
        assert_eq!(
            render(&trust[0]["Condition"]["StringEquals"]["aws:SourceAccount"]),
            "AWS::AccountId",
            "{role}: only this account's tasks may assume it"
        );
    }
}

#[test]
fn the_execution_role_only_pulls_images_writes_logs_and_injects_the_key() {
    let t = template();
    let properties = &t["Resources"]["ExecutionRole"]["Properties"];
    assert_eq!(
        strings(&properties["ManagedPolicyArns"]),
        vec!["arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]
    );
    assert_eq!(
        grants(&t, "ExecutionRole"),
        expect(&[("secretsmanager:GetSecretValue", &["ApiKeySecret"])])
    );
}

#[test]
fn no_policy_grants_wildcard_actions() {
    let t = template();
    for (name, resource) in t["Resources"].as_object().unwrap() {
        let documents: Vec<&Value> = match resource["Type"].as_str() {
            Some("AWS::IAM::Role") => policy_documents(&t, name),
            Some("AWS::IAM::ManagedPolicy") => vec![&resource["Properties"]["PolicyDocument"]],
            _ => continue,
        };
        for action in grants_of(&documents).keys() {
            assert!(!action.contains('*'), "{name} grants {action}");
        }
    }
}

fn resources_of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

#[test]
fn every_alarm_for_people_notifies_the_alarm_topic_and_says_when_it_clears() {
    let t = template();
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    let mut for_people = 0;
    for (name, alarm) in alarms {
        let props = &alarm["Properties"];
        let actions = strings(&props["AlarmActions"]);
        // The wake-from-zero alarms act on a scaling policy, not on a person.
        if name.ends_with("WakeFromZeroAlarm") {
            assert_eq!(actions, [name.replace("Alarm", "")], "{name}");
            continue;
        }
        for_people += 1;
        assert_eq!(actions, ["AlarmTopic"], "{name}");
        assert_eq!(strings(&props["OKActions"]), ["AlarmTopic"], "{name}");
    }
    // Dead letters and oldest message per stage, detector throttling, access denied and a spent
    // budget; the console's unhealthy hosts, target 5XX and load balancer 5XX; and every
    // service running fewer tasks than it wants (a crash-looping API pages someone).
    assert_eq!(for_people, 2 * Stage::ALL.len() + 3 + 3 + services().len());
    for service in services() {
        let alarm = &t["Resources"][format!("{service}TasksBelowDesiredAlarm")]["Properties"];
        assert_eq!(
            alarm["Metrics"][0]["Expression"], "desired - running",
            "{service}"
        );
        assert_eq!(
            render(&alarm["Metrics"][2]["MetricStat"]["Metric"]["Dimensions"][1]["Value"]),
            format!("{service}Service.Name")
        );
    }
    for (alarm, metric) in [
        ("ApiUnhealthyHostsAlarm", "UnHealthyHostCount"),
        ("ApiTarget5xxAlarm", "HTTPCode_Target_5XX_Count"),
        ("LoadBalancer5xxAlarm", "HTTPCode_ELB_5XX_Count"),
    ] {
        assert_eq!(t["Resources"][alarm]["Properties"]["MetricName"], metric);
    }
    let topic = &t["Resources"]["AlarmTopic"]["Properties"];
    assert_eq!(
        render(&topic["KmsMasterKeyId"]),
        "AlarmTopicKey",
        "CloudWatch cannot publish to a topic under the aws/sns key"
    );
    let subscription = &t["Resources"]["AlarmEmailSubscription"];
    assert_eq!(subscription["Condition"], "HasAlarmEmail");
    assert_eq!(
        render(&subscription["Properties"]["Endpoint"]),
        "AlarmEmail"
    );
    // The access-denied alarm counts what the label stage logs for it.
    let filter = &t["Resources"]["DetectorAccessErrorFilter"]["Properties"];
    assert!(filter["FilterPattern"]
        .as_str()
        .unwrap()
        .contains(imgflow_aws::rekognition::DETECTOR_ACCESS_DENIED));
}

#[test]
fn the_console_is_reachable_over_https_only_through_the_load_balancer() {
    let t = template();
    let r = &t["Resources"];
    let https = &r["HttpsListener"]["Properties"];
    assert_eq!(https["Protocol"], "HTTPS");
    assert_eq!(
        render(&https["Certificates"][0]["CertificateArn"]),
        "CertificateArn"
    );
    let redirect = &r["HttpRedirectListener"]["Properties"]["DefaultActions"][0];
    assert_eq!(redirect["Type"], "redirect");
    assert_eq!(redirect["RedirectConfig"]["Protocol"], "HTTPS");
    for rule in r["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
        .as_array()
        .unwrap()
    {
        assert_eq!(render(&rule["CidrIp"]), "AllowedCidr");
    }
    let api_ingress = r["ApiTaskSecurityGroup"]["Properties"]["SecurityGroupIngress"]
        .as_array()
        .unwrap();
    assert_eq!(api_ingress.len(), 1);
    assert_eq!(
        render(&api_ingress[0]["SourceSecurityGroupId"]),
        "LoadBalancerSecurityGroup"
    );
    assert!(r["TaskSecurityGroup"]["Properties"]
        .get("SecurityGroupIngress")
        .is_none());
    let target = &r["ApiTargetGroup"]["Properties"];
    assert_eq!(target["HealthCheckPath"], "/healthz");
    assert_eq!(target["Port"], 8080);
    let service = &r["ApiService"]["Properties"];
    assert_eq!(service["LoadBalancers"][0]["ContainerPort"], 8080);
    assert_eq!(
        render(&service["LoadBalancers"][0]["TargetGroupArn"]),
        "ApiTargetGroup"
    );
    let container = &r["ApiTaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    assert_eq!(container["PortMappings"][0]["ContainerPort"], 8080);
    let outputs = t["Outputs"].as_object().unwrap();
    for output in [
        "ConsoleUrl",
        "ApiKeySecret",
        "IngestQueueUrl",
        "LabelDeadLetterQueueUrl",
        "ImageAcceptedTopicArn",
        "Table",
        "IndexTable",
        "IngestTaskRoleArn",
        "AlarmTopic",
        "OperatorPolicy",
    ] {
        assert!(outputs.contains_key(output), "output {output}");
    }
}

#[test]
fn deployments_roll_back_probe_themselves_and_keep_the_data() {
    let t = template();
    let r = &t["Resources"];
    for stage in services() {
        let stage = stage.as_str();
        let service = &r[format!("{stage}Service")]["Properties"];
        let breaker = &service["DeploymentConfiguration"]["DeploymentCircuitBreaker"];
        assert_eq!(
            (&breaker["Enable"], &breaker["Rollback"]),
            (&Value::Bool(true), &Value::Bool(true)),
            "{stage}"
        );
        let task = &r[format!("{stage}TaskDefinition")]["Properties"];
        assert_eq!(
            render(&task["RuntimePlatform"]["CpuArchitecture"]),
            "CpuArchitecture"
        );
        let container = &task["ContainerDefinitions"][0];
        let binary = format!("/usr/local/bin/imgflow-{}", stage.to_lowercase());
        assert_eq!(
            container["HealthCheck"]["Command"],
            serde_json::json!(["CMD", binary, "--healthcheck"]),
            "{stage}"
        );
        let env: BTreeMap<String, String> = container["Environment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (render(&e["Name"]), render(&e["Value"])))
            .collect();
        assert_eq!(env["IMGFLOW_INCOMING_PREFIX"], "IncomingPrefix", "{stage}");
        if stage != "Api" {
            assert!(
                env["IMGFLOW_METRICS_ADDR"].starts_with("0.0.0.0:"),
                "{stage}"
            );
        }
    }
    // Kept when the stack is deleted or a resource replaced, but not when a first create
    // rolls back: a retry would otherwise fail on names that already exist.
    for data in ["ImagesBucket", "ImagesTable", "IndexTable", "ApiKeySecret"] {
        assert_eq!(r[data]["DeletionPolicy"], "RetainExceptOnCreate", "{data}");
        assert_eq!(r[data]["UpdateReplacePolicy"], "Retain", "{data}");
    }
    // The secret's name is generated: one deleted by a rolled-back create waits out its
    // recovery window under its own name, not the retry's.
    assert!(r["ApiKeySecret"]["Properties"].get("Name").is_none());
    // Auto-scaled services leave their task count to the scaling: an update (a new image)
    // must not snap a scaled-out service back to its minimum.
    for service in services() {
        let properties = &r[format!("{service}Service")]["Properties"];
        assert!(properties.get("DesiredCount").is_none(), "{service}Service");
    }
    // The API: two tasks at least (ECS spreads them over the subnets' zones), scaled on
    // requests per task.
    let api = &r["ApiScalableTarget"]["Properties"];
    assert_eq!(render(&api["MinCapacity"]), "ApiMinTasks");
    assert_eq!(t["Parameters"]["ApiMinTasks"]["MinValue"], 2);
    let policy = &r["ApiRequestScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(
        policy["PredefinedMetricSpecification"]["PredefinedMetricType"],
        "ALBRequestCountPerTarget"
    );
    let rules = r["ImagesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_array()
        .unwrap();
    assert!(rules
        .iter()
        .any(|rule| rule.get("NoncurrentVersionExpiration").is_some()));
    let notification = &r["ImagesBucket"]["Properties"]["NotificationConfiguration"];
    assert_eq!(
        render(&notification["QueueConfigurations"][0]["Filter"]["S3Key"]["Rules"][0]["Value"]),
        "IncomingPrefix"
    );
    // Scaling math survives a missing RunningTaskCount (no task has run for a while).
    let text = std::fs::read_to_string(format!(
        "{}/../deploy/cloudformation/imgflow.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(!text.contains("MAX([tasks") && !text.contains("IF(tasks"));
    // Only documented metric-math forms: MAX of a time series array, not of a bare scalar,
    // is not one, and may be refused at create time.
    assert!(!text.contains("MAX(["), "a scalar inside MAX([...])");
    assert_eq!(text.matches("FILL(tasks, 0)").count(), 3 * Stage::ALL.len());
}

#[test]
fn the_operator_policy_covers_the_cli_and_nothing_that_provisions() {
    let t = template();
    let operator = grants_of(&[&t["Resources"]["OperatorPolicy"]["Properties"]["PolicyDocument"]]);
    // Reindexing (a full scan and rewrite of both tables) is maintenance, not everyday work.
    for rewrite in [
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
    ] {
        assert!(
            !operator.contains_key(rewrite),
            "operator policy grants {rewrite}"
        );
    }
    let maintenance =
        grants_of(&[&t["Resources"]["MaintenancePolicy"]["Properties"]["PolicyDocument"]]);
    assert_eq!(
        maintenance.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "dynamodb:BatchWriteItem",
            "dynamodb:Scan",
            "dynamodb:UpdateItem"
        ]
    );
    for action in operator.keys() {
        assert!(
            !action.contains("Create") && !action.contains("Delete")
                || action == "sqs:DeleteMessage",
            "operator policy grants {action}"
        );
    }
    // Backfill lists versions; nothing the CLI does lists objects.
    assert!(!operator.contains_key("s3:ListBucket"));
    for needed in [
        "sqs:PurgeQueue",
        "s3:PutObject",
        // backfill
        "s3:ListBucketVersions",
        "dynamodb:BatchGetItem",
        // backfill and relabel send to the ingest and label queues
        "sqs:SendMessage",
    ] {
        assert!(
            operator.contains_key(needed),
            "operator policy lacks {needed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_resources_match_the_template() {
    let t = template();
    let p = TestPipeline::new("e2e-drift").await;
    let prefix = &p.names.prefix;
    let max_receive = t["Parameters"]["MaxReceiveCount"]["Default"]
        .as_u64()
        .unwrap();
    for stage in Stage::ALL {
        let (name, visibility, dlq_name) = template_queue(&t, stage);
        assert_eq!(name.replace("${Prefix}", prefix), p.names.queue(stage));
        assert_eq!(
            dlq_name.replace("${Prefix}", prefix),
            p.names.dead_letter_queue(stage)
        );
        let attributes = p
            .aws
            .sqs
            .get_queue_attributes()
            .queue_url(&p.provisioned.queue_urls[&stage])
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        assert_eq!(
            attributes[&QueueAttributeName::VisibilityTimeout],
            visibility.to_string(),
            "{stage}"
        );
        let redrive: Value =
            serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert!(redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", p.names.dead_letter_queue(stage))));
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            max_receive.to_string()
        );
    }

    // Subscriptions: each fed stage's queue on its upstream topic, raw delivery.
    for (subscription, stage) in [
        ("LabelSubscription", Stage::Label),
        ("StoreSubscription", Stage::Store),
        ("ThumbnailSubscription", Stage::Thumbnail),
    ] {
        let props = &t["Resources"][subscription]["Properties"];
        assert_eq!(props["RawMessageDelivery"], true);
        let topic = render(&props["TopicArn"]);
        let topic_name =
            render(&t["Resources"][&topic]["Properties"]["TopicName"]).replace("${Prefix}", prefix);
        let arn = &p.provisioned.topic_arns[&topic_name];
        let subs = p
            .aws
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(arn)
            .send()
            .await
            .unwrap();
        let sub = subs.subscriptions().iter().find(|s| {
            s.endpoint()
                .is_some_and(|e| e.ends_with(&format!(":{}", p.names.queue(stage))))
        });
        let sub = sub.unwrap_or_else(|| panic!("{stage} is not subscribed to {topic_name}"));
        let attrs = p
            .aws
            .sns
            .get_subscription_attributes()
            .subscription_arn(sub.subscription_arn().unwrap())
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        assert_eq!(attrs["RawMessageDelivery"], "true");
    }

    // Versioning is the one deliberate difference: the stack's bucket is versioned (an
    // overwrite or a delete keeps the old bytes), `imgflow provision`'s is not, so that
    // identical content uploaded twice to one key stays one image (ids come from the ETag
    // there, from the version id on a versioned bucket). `faults.rs` runs a versioned bucket.
    assert_eq!(
        t["Resources"]["ImagesBucket"]["Properties"]["VersioningConfiguration"]["Status"],
        "Enabled"
    );
    let put = p
        .aws
        .s3
        .put_object()
        .bucket(&p.names.bucket)
        .key("outside-the-prefix/versioning-check")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id(), None, "provisioned bucket is unversioned");

    // The bucket notification: creations and deletions under incoming/ to the ingest queue.
    let queue_config = &t["Resources"]["ImagesBucket"]["Properties"]["NotificationConfiguration"]
        ["QueueConfigurations"][0];
    let rule = &queue_config["Filter"]["S3Key"]["Rules"][0];
    let notification = p
        .aws
        .s3
        .get_bucket_notification_configuration()
        .bucket(&p.names.bucket)
        .send()
        .await
        .unwrap();
    let provisioned = &notification.queue_configurations()[0];
    let mut template_events: Vec<&str> = t["Resources"]["ImagesBucket"]["Properties"]
        ["NotificationConfiguration"]["QueueConfigurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Event"].as_str().unwrap())
        .collect();
    let mut provisioned_events: Vec<&str> =
        provisioned.events().iter().map(|e| e.as_str()).collect();
    template_events.sort();
    provisioned_events.sort();
    assert_eq!(
        provisioned_events,
        [
            "s3:LifecycleExpiration:*",
            "s3:ObjectCreated:*",
            "s3:ObjectRemoved:*"
        ]
    );
    assert_eq!(template_events, provisioned_events);
    assert!(provisioned
        .queue_arn()
        .ends_with(&format!(":{}", p.names.queue(Stage::Ingest))));
    let filter = provisioned.filter().unwrap().key().unwrap().filter_rules();
    // The template's filter is the IncomingPrefix parameter; provision uses its default.
    assert_eq!(render(&rule["Value"]), "IncomingPrefix");
    assert_eq!(
        filter[0].value().unwrap(),
        t["Parameters"]["IncomingPrefix"]["Default"]
            .as_str()
            .unwrap()
    );
    assert_eq!(
        filter[0].name().unwrap().as_str().to_lowercase(),
        rule["Name"].as_str().unwrap()
    );

    // Tables: the same keys and console indexes as the template's.
    for (resource, table) in [
        ("ImagesTable", &p.names.table),
        ("IndexTable", &p.names.index_table),
    ] {
        let props = &t["Resources"][resource]["Properties"];
        assert_eq!(
            render(&props["TableName"]).replace("${Prefix}", prefix),
            *table
        );
        let described = p
            .aws
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<String> {
            schema
                .iter()
                .map(|k| k.attribute_name().to_owned())
                .collect()
        };
        let template_keys = |schema: &Value| -> Vec<String> {
            schema
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["AttributeName"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            keys(described.key_schema()),
            template_keys(&props["KeySchema"]),
            "{resource}"
        );
        let mut provisioned: Vec<(String, Vec<String>, String)> = described
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                (
                    i.index_name().unwrap().to_owned(),
                    keys(i.key_schema()),
                    i.projection()
                        .unwrap()
                        .projection_type()
                        .unwrap()
                        .as_str()
                        .to_owned(),
                )
            })
            .collect();
        let mut declared: Vec<(String, Vec<String>, String)> = props["GlobalSecondaryIndexes"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|i| {
                (
                    i["IndexName"].as_str().unwrap().to_owned(),
                    template_keys(&i["KeySchema"]),
                    i["Projection"]["ProjectionType"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect();
        provisioned.sort();
        declared.sort();
        assert_eq!(provisioned, declared, "{resource}'s indexes");
    }
}

/// The ECS network a deploy needs (values the dry run only passes on).
const ECS_ARGS: [&str; 10] = [
    "--vpc",
    "vpc-1",
    "--subnets",
    "subnet-a",
    "--public-subnets",
    "subnet-c",
    "--certificate",
    "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
    "--allowed-cidr",
    "203.0.113.0/24",
];

fn run_deploy_script(args: &[&str]) -> (i32, String) {
    run_script("deploy", args, &[])
}

/// Runs `scripts/<name>` with `args` and `env`; its exit code and output.
fn run_script(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let script = format!("{}/../scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    // No aws or docker on this PATH unless `env` gives one: a dry run must not need them.
    let out = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_deploy_script_dry_run_shows_every_step_and_gives_every_required_parameter() {
    let (code, out) = run_deploy_script(&[
        "--dry-run",
        "--region",
        "eu-west-1",
        "--vpc",
        "vpc-1",
        "--subnets",
        "subnet-a,subnet-b",
        "--public-subnets",
        "subnet-c,subnet-d",
        "--certificate",
        "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
        "--allowed-cidr",
        "203.0.113.0/24",
        "--tag",
        "v1",
    ]);
    assert_eq!(code, 0, "{out}");
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("+ ")).collect();
    let expected_order = [
        "+ aws sts get-caller-identity",
        // No --arch: the image is built for the architecture the stack runs.
        "+ aws cloudformation describe-stacks",
        "+ aws ecr create-repository",
        // A tag already pushed is not built again (the repository is immutable).
        "+ aws ecr describe-images",
        "+ aws ecr get-login-password",
        "+ docker build",
        "+ docker push",
        // The artifacts bucket for the template, private, encrypted, self-cleaning.
        "+ aws s3api create-bucket",
        "+ aws s3api put-public-access-block",
        "+ aws s3api put-bucket-encryption",
        "+ aws s3api put-bucket-lifecycle-configuration",
        "+ aws cloudformation deploy",
        "+ aws cloudformation describe-stacks",
    ];
    assert_eq!(steps.len(), expected_order.len(), "{out}");
    for (step, expected) in steps.iter().zip(expected_order) {
        assert!(step.starts_with(expected), "{step} (expected {expected})");
    }
    let image = "ACCOUNT_ID.dkr.ecr.eu-west-1.amazonaws.com/imgflow:v1";
    assert!(steps[5].ends_with(&format!("-t {image} .")), "{}", steps[5]);
    assert!(steps[6].ends_with(image));
    let bucket = "imgflow-cfn-ACCOUNT_ID-eu-west-1";
    assert!(
        steps[7].contains(&format!("--bucket {bucket}")),
        "{}",
        steps[7]
    );
    let deploy = steps[11];
    assert!(deploy.contains("--template-file deploy/cloudformation/imgflow.yaml"));
    assert!(
        deploy.contains(&format!("--s3-bucket {bucket}")),
        "{deploy}"
    );
    assert!(deploy.contains("CAPABILITY_NAMED_IAM"));
    assert!(deploy.contains(&format!("Image={image}")));
    // A minimal re-run changes no optional setting: the stack keeps its own.
    for optional in [
        "Detector=",
        "CpuArchitecture=",
        "AlarmEmail=",
        "ConsoleDomainName=",
        "Ecs=",
        "OidcProviderArn=",
        "KubernetesNamespace=",
    ] {
        assert!(!deploy.contains(optional), "{optional} passed: {deploy}");
    }
    // Every parameter without a default is given, and ECS's network.
    let t = template();
    for (name, parameter) in t["Parameters"].as_object().unwrap() {
        if parameter.get("Default").is_none() || ECS_NETWORK.contains(&name.as_str()) {
            assert!(
                deploy.contains(&format!(" {name}=")),
                "{name} is not passed: {deploy}"
            );
        }
    }
    // ECS only: no Kubernetes overlay.
    assert!(!out.contains("k8s-overlay"), "{out}");
    assert!(out.contains("dry run: nothing was built, pushed or deployed"));

    // Given settings are passed, and --arch builds for that architecture without asking.
    let (code, out) = run_deploy_script(
        &[
            &["--dry-run", "--region", "us-east-1"][..],
            &ECS_ARGS,
            &[
                "--detector",
                "local",
                "--arch",
                "ARM64",
                "--alarm-email",
                "ops@example.com",
                "--tag",
                "v1",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}");
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("+ ")).collect();
    assert!(!steps[1].starts_with("+ aws cloudformation describe-stacks"));
    let build = steps
        .iter()
        .find(|s| s.starts_with("+ docker build"))
        .unwrap();
    assert!(build.contains("--platform linux/arm64"), "{build}");
    let create = steps.iter().find(|s| s.contains("create-bucket")).unwrap();
    assert!(
        !create.contains("LocationConstraint"),
        "us-east-1 takes none: {create}"
    );
    let deploy = steps
        .iter()
        .find(|s| s.starts_with("+ aws cloudformation deploy"))
        .unwrap();
    for given in [
        "Detector=local",
        "CpuArchitecture=ARM64",
        "AlarmEmail=ops@example.com",
    ] {
        assert!(deploy.contains(given), "{given} not passed: {deploy}");
    }
    assert!(!deploy.contains("ConsoleDomainName="), "{deploy}");

    let (code, out) = run_deploy_script(&["--dry-run", "--region", "eu-west-1"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("missing --vpc --subnets --public-subnets --certificate --allowed-cidr"));
}

#[test]
fn a_kubernetes_only_deploy_needs_no_network_and_writes_the_overlay() {
    let oidc = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC";
    let keda = "arn:aws:iam::123456789012:role/keda-operator";
    let (code, out) = run_deploy_script(&[
        "--dry-run",
        "--region",
        "eu-west-1",
        "--no-ecs",
        "--oidc-provider",
        oidc,
        "--keda-operator-role",
        keda,
        "--vpc-cidr",
        "10.1.0.0/16",
        "--namespace",
        "flows",
        "--tag",
        "v1",
    ]);
    assert_eq!(code, 0, "{out}");
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("+ ")).collect();
    let at = steps
        .iter()
        .position(|s| s.starts_with("+ aws cloudformation deploy"))
        .unwrap();
    let deploy = steps[at];
    for given in [
        "Ecs=disabled".to_owned(),
        format!("OidcProviderArn={oidc}"),
        format!("KedaOperatorRoleArn={keda}"),
        "KubernetesNamespace=flows".to_owned(),
    ] {
        assert!(deploy.contains(&given), "{given} not passed: {deploy}");
    }
    for network in ["VpcId=", "SubnetIds=", "CertificateArn=", "AllowedCidr="] {
        assert!(!deploy.contains(network), "{network} passed: {deploy}");
    }
    // After the stack, the overlay with the image just pushed.
    assert_eq!(
        steps[at + 1],
        "+ scripts/k8s-overlay --region eu-west-1 --account ACCOUNT_ID --prefix imgflow \
         --image ACCOUNT_ID.dkr.ecr.eu-west-1.amazonaws.com/imgflow:v1 --vpc-cidr 10.1.0.0/16 \
         --namespace flows --incoming-prefix incoming/ --detector rekognition \
         deploy/k8s/overlays/imgflow-eu-west-1"
    );

    // Kubernetes needs its cluster's identity, KEDA's role and the VPC's range.
    let (code, out) = run_deploy_script(&[
        "--dry-run",
        "--region",
        "eu-west-1",
        "--oidc-provider",
        oidc,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("missing --vpc --subnets --public-subnets --certificate --allowed-cidr --keda-operator-role --vpc-cidr"), "{out}");
}

#[test]
fn the_readmes_grants_match_the_template() {
    let readme =
        std::fs::read_to_string(format!("{}/../README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let start = readme.find("## Deploy to AWS").unwrap();
    let end = start + readme[start..].find("\n## Pointing").unwrap();
    let section = &readme[start..end];
    let t = template();
    let mut granted = BTreeSet::new();
    for (_, policy) in resources_of_type(&t, "AWS::IAM::ManagedPolicy") {
        granted.extend(grants_of(&[&policy["Properties"]["PolicyDocument"]]).into_keys());
    }
    // Every action the stage and operator policies grant is named there, as a whole word
    // (`GetObjectVersion` does not name `GetObject`)...
    let words: BTreeSet<&str> = section
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for action in &granted {
        let name = action.split_once(':').unwrap().1;
        assert!(
            words.contains(name),
            "README's Deploy section does not mention {action}"
        );
    }
    // ...and every action it names in full is one the template grants (or KEDA's AssumeRole).
    for token in section.split('`').skip(1).step_by(2) {
        let is_action = token.split_once(':').is_some_and(|(service, name)| {
            ["s3", "sqs", "sns", "dynamodb", "rekognition"].contains(&service)
                && name.chars().all(|c| c.is_ascii_alphabetic())
        });
        if is_action {
            assert!(
                granted.contains(token),
                "README names {token}, which the template does not grant"
            );
        }
    }
}

/// CloudFormation refuses a template over 51,200 bytes passed inline: while the template is
/// that large, no documented `aws cloudformation deploy` may pass it without `--s3-bucket`.
#[test]
fn a_template_over_the_inline_limit_is_never_passed_inline() {
    let template = std::fs::read(format!(
        "{}/../deploy/cloudformation/imgflow.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    if template.len() <= 51_200 {
        return;
    }
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    for document in ["README.md", "scripts/deploy"] {
        let text = std::fs::read_to_string(format!("{root}/{document}")).unwrap();
        // A command may continue over lines ending in a backslash.
        let joined = text.replace("\\\n", " ");
        for line in joined
            .lines()
            .filter(|l| l.contains("cloudformation deploy"))
        {
            if line.contains("--template-file") {
                assert!(
                    line.contains("--s3-bucket"),
                    "{document}: the template ({} bytes) passed inline: {line}",
                    template.len()
                );
            }
        }
    }
}

/// Every named resource's name fits its service's limit with the longest prefix the `Prefix`
/// parameter allows (and a 12-digit account id): a long prefix fails at the pattern, before
/// anything is created, not half-way through a create.
#[test]
fn every_resource_name_fits_its_limit_with_the_longest_prefix() {
    let t = template();
    let pattern = t["Parameters"]["Prefix"]["AllowedPattern"]
        .as_str()
        .unwrap();
    // "^[a-z0-9][a-z0-9-]{0,N}$": 1 + N characters at most.
    let longest = 1 + pattern
        .rsplit_once(",")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(n, _)| n.parse::<usize>().unwrap())
        .unwrap();
    let prefix = "p".repeat(longest);
    let limits: [(&str, &str, usize); 14] = [
        ("AWS::S3::Bucket", "BucketName", 63),
        ("AWS::SNS::Topic", "TopicName", 256),
        ("AWS::SQS::Queue", "QueueName", 80),
        ("AWS::DynamoDB::Table", "TableName", 255),
        ("AWS::ECS::Cluster", "ClusterName", 255),
        ("AWS::IAM::Role", "RoleName", 64),
        ("AWS::Logs::LogGroup", "LogGroupName", 512),
        ("AWS::ECS::TaskDefinition", "Family", 255),
        ("AWS::ECS::Service", "ServiceName", 255),
        ("AWS::ElasticLoadBalancingV2::LoadBalancer", "Name", 32),
        ("AWS::ElasticLoadBalancingV2::TargetGroup", "Name", 32),
        (
            "AWS::ApplicationAutoScaling::ScalingPolicy",
            "PolicyName",
            256,
        ),
        ("AWS::CloudWatch::Alarm", "AlarmName", 255),
        ("AWS::CloudWatch::Dashboard", "DashboardName", 255),
    ];
    let mut checked = 0;
    for (logical, resource) in t["Resources"].as_object().unwrap() {
        let kind = resource["Type"].as_str().unwrap();
        for (_, property, limit) in limits.iter().filter(|(k, _, _)| *k == kind) {
            let Some(name) = resource["Properties"][property]["Fn::Sub"].as_str() else {
                continue;
            };
            let name = name
                .replace("${Prefix}", &prefix)
                .replace("${AWS::AccountId}", "123456789012")
                // The longest region names (ap-southeast-2, ap-northeast-3, …) have 14.
                .replace("${AWS::Region}", "ap-southeast-2");
            assert!(
                name.len() <= *limit,
                "{logical}: {name} is {} characters, over {kind}'s {limit}",
                name.len()
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked} names checked");
}

/// The load balancer reaches the API tasks' port and nothing else: its group declares an
/// egress that allows nothing (which removes the default allow-all), and the one real rule
/// goes to the API tasks' group on 8080.
#[test]
fn the_load_balancer_sends_only_to_the_api_tasks() {
    let t = template();
    let r = &t["Resources"];
    let inline = r["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupEgress"]
        .as_array()
        .expect("inline egress, or the default allow-all stays");
    assert_eq!(inline.len(), 1);
    assert_eq!(inline[0]["CidrIp"], "127.0.0.1/32");
    let rules: Vec<_> = r
        .as_object()
        .unwrap()
        .values()
        .filter(|v| v["Type"] == "AWS::EC2::SecurityGroupEgress")
        .filter(|v| render(&v["Properties"]["GroupId"]) == "LoadBalancerSecurityGroup")
        .collect();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0]["Properties"];
    assert_eq!(
        render(&rule["DestinationSecurityGroupId"]),
        "ApiTaskSecurityGroup"
    );
    assert_eq!(
        (&rule["FromPort"], &rule["ToPort"]),
        (&8080.into(), &8080.into())
    );
}

/// The onnxruntime wheel is pinned by hash, the same in the image and in scripts/onnxruntime,
/// and pip is made to check it.
#[test]
fn the_onnxruntime_wheel_is_pinned_by_hash_everywhere() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let hashes = |file: &str| -> BTreeSet<String> {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        assert!(text.contains("--require-hashes"), "{file}");
        text.split("--hash=sha256:")
            .skip(1)
            .map(|rest| rest.chars().take_while(char::is_ascii_hexdigit).collect())
            .collect()
    };
    let image = hashes("deploy/Dockerfile");
    assert_eq!(image.len(), 2, "x86_64 and aarch64: {image:?}");
    assert!(image.iter().all(|h| h.len() == 64));
    assert_eq!(image, hashes("scripts/onnxruntime"));
}

#[test]
fn private_subnets_without_nat_get_an_endpoint_for_every_service_the_tasks_call() {
    let t = template();
    let resources = t["Resources"].as_object().unwrap();
    let endpoints: BTreeMap<String, &Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::EC2::VPCEndpoint")
        .map(|r| {
            let service = render(&r["Properties"]["ServiceName"]);
            let service = service
                .strip_prefix("com.amazonaws.${AWS::Region}.")
                .unwrap()
                .to_owned();
            (service, &r["Properties"])
        })
        .collect();
    // Every service a task role or the execution role is granted is reachable without NAT.
    let mut called: BTreeSet<String> = BTreeSet::new();
    for role in services()
        .iter()
        .map(|s| format!("{s}TaskRole"))
        .chain(["ExecutionRole".to_owned()])
    {
        for action in grants(&t, &role).keys() {
            called.insert(action.split(':').next().unwrap().to_owned());
        }
    }
    // The execution role's managed policy: image pulls and the awslogs driver.
    called.extend(["ecr.api", "ecr.dkr", "logs"].map(String::from));
    called.remove("ecr");
    let offered: BTreeSet<String> = endpoints.keys().cloned().collect();
    assert_eq!(offered, called);
    // Each only when asked for; Rekognition's only where it labels.
    for (id, resource) in resources {
        if resource["Type"] == "AWS::EC2::VPCEndpoint" {
            let wanted = if id.starts_with("Rekognition") {
                "CreatesRekognitionEndpoint"
            } else {
                "CreatesVpcEndpoints"
            };
            assert_eq!(resource["Condition"], wanted, "{id}");
        }
    }
    // No service starts before them: each depends on a handle that refers to every endpoint.
    let handle = resources["VpcEndpointsReady"]["Metadata"].to_string();
    for (id, resource) in resources {
        if resource["Type"] == "AWS::EC2::VPCEndpoint" {
            assert!(handle.contains(&format!(r#"{{"Ref":"{id}"}}"#)), "{id}");
        }
        if resource["Type"] == "AWS::ECS::Service" {
            assert!(
                strings(&resource["DependsOn"]).contains(&"VpcEndpointsReady".to_owned()),
                "{id} may start before the endpoints"
            );
        }
    }
    for (service, properties) in &endpoints {
        if service == "s3" || service == "dynamodb" {
            assert_eq!(properties["VpcEndpointType"], "Gateway", "{service}");
            assert_eq!(render(&properties["RouteTableIds"]), "PrivateRouteTableIds");
        } else {
            assert_eq!(properties["VpcEndpointType"], "Interface", "{service}");
            assert_eq!(render(&properties["SubnetIds"]), "SubnetIds");
            assert_eq!(properties["PrivateDnsEnabled"], true, "{service}");
            assert_eq!(
                strings(&properties["SecurityGroupIds"]),
                ["VpcEndpointSecurityGroup"]
            );
        }
    }
    // The endpoints admit HTTPS from the imgflow tasks only, and send nothing.
    let group = &resources["VpcEndpointSecurityGroup"]["Properties"];
    let sources: BTreeSet<String> = group["SecurityGroupIngress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            assert_eq!(
                (rule["FromPort"].as_u64(), rule["ToPort"].as_u64()),
                (Some(443), Some(443))
            );
            render(&rule["SourceSecurityGroupId"])
        })
        .collect();
    assert_eq!(
        sources,
        BTreeSet::from([
            "TaskSecurityGroup".to_owned(),
            "ApiTaskSecurityGroup".to_owned()
        ])
    );
    assert_eq!(group["SecurityGroupEgress"][0]["CidrIp"], "127.0.0.1/32");
    // Only with ECS, only when asked, and then with the route tables.
    assert!(t["Conditions"]["CreatesVpcEndpoints"]
        .to_string()
        .contains(r#"{"Condition":"OnEcs"}"#));
    assert_eq!(t["Parameters"]["VpcEndpoints"]["Default"], "none");
    assert!(t["Rules"]["EndpointsNeedRouteTables"]
        .to_string()
        .contains("PrivateRouteTableIds"));
}

/// `scripts/deploy --arch ARM64` on an x86 machine (or the reverse) must not build under
/// emulation: every stage that runs something runs on the build machine's platform, and the
/// image's own stage runs nothing.
#[test]
fn the_image_cross_compiles_and_runs_nothing_for_the_target() {
    let text = std::fs::read_to_string(format!(
        "{}/../deploy/Dockerfile",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    // Instructions, with continuation lines joined.
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let instructions: Vec<&str> = joined.lines().filter(|l| !l.trim().is_empty()).collect();
    // Stages, from each FROM (the ARGs before the first are global).
    let stages: Vec<Vec<&str>> = instructions.iter().fold(Vec::new(), |mut stages, line| {
        if line.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push(*line);
        }
        stages
    });
    let (last, builders) = stages.split_last().unwrap();
    assert!(builders.len() >= 2);
    for stage in builders {
        assert!(
            stage[0].starts_with("FROM --platform=$BUILDPLATFORM "),
            "{}",
            stage[0]
        );
        assert!(stage.contains(&"ARG TARGETARCH"), "{}", stage[0]);
    }
    assert!(
        last.iter().all(|line| !line.starts_with("RUN ")),
        "the image's stage runs something for the target: {last:?}"
    );
    let build = builders[0].join("\n");
    assert!(build.contains("cargo build --release --locked --target \"$triple\""));
    for (arch, triple) in [
        ("amd64", "x86_64-unknown-linux-gnu"),
        ("arm64", "aarch64-unknown-linux-gnu"),
    ] {
        assert!(
            build.contains(&format!("{arch}) triple={triple}")),
            "{arch}"
        );
    }
    assert!(build.contains("_LINKER=$gnu-gcc"));
    let wheel = builders[1].join("\n");
    assert!(wheel.contains("--platform \"manylinux_2_28_$arch\""));
}

/// Base images pinned by digest: `scripts/pin-base-images` resolves each of the Dockerfile's
/// base-image tags (here through a stand-in `docker buildx imagetools inspect`) into a lock
/// file, and `scripts/deploy` builds with exactly those; a malformed lock stops it before
/// anything is built.
#[test]
fn base_images_are_pinned_by_digest_and_built_with_the_pins() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pins-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    // A digest of the reference's own, so that each image gets a different one.
    let docker = dir.join("bin/docker");
    std::fs::write(
        &docker,
        "#!/usr/bin/env bash\n[ \"$1 $2 $3\" = \"buildx imagetools inspect\" ] || exit 1\n\
         d=$(printf %s \"${@: -1}\" | sha256sum | cut -c1-64)\n\
         echo \"{\\\"mediaType\\\": \\\"application/vnd.oci.image.index.v1+json\\\", \\\"digest\\\": \\\"sha256:$d\\\"}\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lock = dir.join("base-images.lock");
    let path = format!("{}:/usr/bin:/bin", dir.join("bin").display());
    let (code, out) = run_script(
        "pin-base-images",
        &["--lock", lock.to_str().unwrap()],
        &[("PATH", &path)],
    );
    assert_eq!(code, 0, "{out}");
    let dockerfile = std::fs::read_to_string(format!(
        "{}/../deploy/Dockerfile",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let pins = std::fs::read_to_string(&lock).unwrap();
    let pins: Vec<&str> = pins.lines().filter(|l| !l.starts_with('#')).collect();
    for name in ["RUST_IMAGE", "PYTHON_IMAGE", "RUNTIME_IMAGE"] {
        let tag = dockerfile
            .lines()
            .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
            .unwrap_or_else(|| panic!("no ARG {name}"));
        assert!(
            dockerfile.contains(&format!("${{{name}}}")),
            "{name} unused"
        );
        let pin = pins
            .iter()
            .find(|p| p.starts_with(&format!("{name}={tag}@sha256:")))
            .unwrap_or_else(|| panic!("{name} not pinned: {pins:?}"));
        assert_eq!(
            pin.len(),
            name.len() + 1 + tag.len() + "@sha256:".len() + 64
        );
    }
    assert_eq!(pins.len(), 3);

    // scripts/deploy builds with them.
    let deploy_args = [
        &["--dry-run", "--region", "eu-west-1", "--tag", "v1"][..],
        &ECS_ARGS,
    ]
    .concat();
    let (code, out) = run_script(
        "deploy",
        &deploy_args,
        &[("IMGFLOW_BASE_IMAGES_LOCK", lock.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{out}");
    let build = out
        .lines()
        .find(|l| l.starts_with("+ docker build"))
        .unwrap();
    for pin in &pins {
        assert!(build.contains(&format!("--build-arg {pin}")), "{build}");
    }
    // Without a lock it says the images go by tag.
    let (_, out) = run_script(
        "deploy",
        &deploy_args,
        &[("IMGFLOW_BASE_IMAGES_LOCK", "/nonexistent")],
    );
    assert!(out.contains("base images by tag"), "{out}");
    // A malformed lock stops it before anything is built.
    std::fs::write(&lock, "RUST_IMAGE=rust:latest\n").unwrap();
    let (code, out) = run_script(
        "deploy",
        &deploy_args,
        &[("IMGFLOW_BASE_IMAGES_LOCK", lock.to_str().unwrap())],
    );
    assert_eq!(code, 2, "{out}");
    assert!(!out.contains("+ docker build"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

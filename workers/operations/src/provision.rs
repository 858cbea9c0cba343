//! `imgflow provision`: every resource of the topology, created or brought up to date.
//! Safe to run any number of times, also while the pipeline runs. This is the plan (names,
//! keys, policies, order); the SDK calls are `imgflow_aws::provision`'s.
use std::collections::{BTreeSet, HashMap};

use imgflow_aws::{
    provision::{
        enable_ttl, ensure_bucket, ensure_notification, ensure_queue, ensure_subscription,
        ensure_table, ensure_topic, queue_arn, region, set_queue_attributes,
    },
    AwsClients,
};
use imgflow_catalog::keys::{BY_DAY_INDEX, BY_STATUS_INDEX};
use imgflow_runtime::config::{Names, Stage};
use serde_json::json;

pub use imgflow_aws::provision::ProvisionError;

/// S3 answers a notification configuration with an `s3:TestEvent` in the ingest queue: taken
/// out here (others are released at once), so that `imgflow status` right after `provision`
/// shows no message that is not an upload. Best effort: any that arrives later, or that a
/// caller without `sqs:ReceiveMessage` cannot take, is deleted by ingest when it runs.
async fn drop_test_events(aws: &AwsClients, url: &str) {
    let queue = imgflow_aws::sqs::QueueAdmin::new(aws.sqs.clone(), url.to_owned());
    // The event may take a moment to arrive; a few short looks, each ending at the first
    // batch without one.
    for _ in 0..3 {
        let batch = match queue.take(10, std::time::Duration::from_secs(30)).await {
            Ok(batch) if !batch.is_empty() => batch,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, "S3 test events left for ingest");
                return;
            }
        };
        let (tests, others): (Vec<_>, Vec<_>) = batch.into_iter().partition(|m| {
            matches!(
                imgflow_messages::parse_notification(&m.body),
                Ok(imgflow_messages::Notification::TestEvent)
            )
        });
        if let Err(e) = queue.release(&others).await {
            tracing::warn!(error = %e, "messages taken while looking for S3 test events come back after their hold");
        }
        for test in &tests {
            let _ = queue.delete(test).await;
        }
        if tests.is_empty() {
            return;
        }
    }
}

/// The images table's console indexes: (name, partition key, sort key), keys only.
const IMAGE_INDEXES: &[(&str, &str, &str)] = &[
    (BY_DAY_INDEX, "day", "received_key"),
    (BY_STATUS_INDEX, "status_day", "received_key"),
];

/// Settings that are not names.
#[derive(Debug, Clone)]
pub struct ProvisionSettings {
    /// Receives before SQS moves a message to the dead-letter queue.
    pub max_receive_count: u32,
    /// One visibility timeout for every queue instead of each stage's default (workers must
    /// then be given the same `IMGFLOW_VISIBILITY_TIMEOUT_SECS`).
    pub visibility_timeout: Option<std::time::Duration>,
}

impl Default for ProvisionSettings {
    fn default() -> Self {
        Self {
            max_receive_count: 5,
            visibility_timeout: None,
        }
    }
}

/// What exists after provisioning.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The image bucket.
    pub bucket: String,
    /// The images table.
    pub table: String,
    /// Queue URL per stage.
    pub queue_urls: HashMap<Stage, String>,
    /// Dead-letter queue URL per stage.
    pub dead_letter_queue_urls: HashMap<Stage, String>,
    /// Topic ARN by full topic name.
    pub topic_arns: HashMap<String, String>,
    /// The resources this run created, as `<kind> <name>` (`queue imgflow-label`); every
    /// other one existed and had its settings applied again.
    pub created: BTreeSet<String>,
}

/// Creates or updates every resource under `names`.
pub async fn provision(
    aws: &AwsClients,
    names: &Names,
    settings: &ProvisionSettings,
) -> Result<Provisioned, ProvisionError> {
    let mut created = BTreeSet::new();
    let mut note = |created_now: bool, kind: &str, name: &str| {
        if created_now {
            created.insert(format!("{kind} {name}"));
        }
    };
    note(
        ensure_bucket(aws, &names.bucket, &region(aws)).await?,
        "bucket",
        &names.bucket,
    );
    for (table, keys, indexes) in [
        (&names.table, ("id", None), IMAGE_INDEXES),
        (&names.index_table, ("pk", Some("sk")), &[][..]),
    ] {
        note(
            ensure_table(aws, table, keys, indexes).await?,
            "table",
            table,
        );
    }
    enable_ttl(aws, &names.index_table, "expires_at").await?;

    let mut topic_arns = HashMap::new();
    for stage in Stage::ALL {
        let name = names.topic(stage.output_topic());
        let (arn, created_now) = ensure_topic(aws, &name).await?;
        note(created_now, "topic", &name);
        topic_arns.insert(name, arn);
    }

    let mut queue_urls = HashMap::new();
    let mut dead_letter_queue_urls = HashMap::new();
    for stage in Stage::ALL {
        let dlq_name = names.dead_letter_queue(stage);
        let (dlq_url, created_now) = ensure_queue(aws, &dlq_name).await?;
        note(created_now, "queue", &dlq_name);
        let dlq_arn = queue_arn(aws, &dlq_name, &dlq_url).await?;
        let name = names.queue(stage);
        let (url, created_now) = ensure_queue(aws, &name).await?;
        note(created_now, "queue", &name);
        let arn = queue_arn(aws, &name, &url).await?;

        // Only the stage's feeder may send: the bucket for ingest, the upstream topic otherwise.
        let (service, source_arn) = match stage.input_topic() {
            None => ("s3.amazonaws.com", format!("arn:aws:s3:::{}", names.bucket)),
            Some(topic) => ("sns.amazonaws.com", topic_arns[&names.topic(topic)].clone()),
        };
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "imgflow-feeder",
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}}
            }]
        });
        let redrive = json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": settings.max_receive_count.to_string(),
        });
        let visibility = settings
            .visibility_timeout
            .unwrap_or(stage.visibility_timeout());
        set_queue_attributes(
            aws,
            &name,
            &url,
            &[
                ("VisibilityTimeout", visibility.as_secs().to_string()),
                ("ReceiveMessageWaitTimeSeconds", "20".into()),
                ("MessageRetentionPeriod", (4 * 24 * 3600).to_string()),
                ("RedrivePolicy", redrive.to_string()),
                ("Policy", policy.to_string()),
            ],
        )
        .await?;
        let redrive_allow = json!({"redrivePermission": "byQueue", "sourceQueueArns": [arn]});
        set_queue_attributes(
            aws,
            &dlq_name,
            &dlq_url,
            &[
                // Dead letters are kept the longest SQS allows, for inspection and replay.
                ("MessageRetentionPeriod", (14 * 24 * 3600).to_string()),
                ("RedriveAllowPolicy", redrive_allow.to_string()),
            ],
        )
        .await?;
        if let Some(topic) = stage.input_topic() {
            ensure_subscription(aws, &topic_arns[&names.topic(topic)], &arn).await?;
        }
        queue_urls.insert(stage, url);
        dead_letter_queue_urls.insert(stage, dlq_url);
        if stage == Stage::Ingest {
            let put =
                ensure_notification(aws, &names.bucket, &arn, names.incoming_prefix()).await?;
            // Only into a queue this run made: on a live one, receiving would count against
            // real uploads' receives (an unchanged configuration sends no test event anyway).
            if put && created_now {
                drop_test_events(aws, &queue_urls[&stage]).await;
            }
        }
    }
    Ok(Provisioned {
        bucket: names.bucket.clone(),
        table: names.table.clone(),
        queue_urls,
        dead_letter_queue_urls,
        topic_arns,
        created,
    })
}

//! Provisioning's SDK calls: each resource created if missing and brought up to date,
//! safe to repeat. What to create, under which names and with which policies, is
//! `imgflow_operations::provision`'s plan.
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Event, FilterRule, FilterRuleName,
    NotificationConfiguration, NotificationConfigurationFilter, PublicAccessBlockConfiguration,
    QueueConfiguration, S3KeyFilter, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use aws_sdk_sqs::types::QueueAttributeName;

use imgflow_runtime::{PortError, PortErrorKind};

use crate::AwsClients;

/// A provisioning step that failed, naming the resource.
#[derive(Debug, thiserror::Error)]
#[error("provisioning {resource}: {message}")]
pub struct ProvisionError {
    /// Which resource.
    pub resource: String,
    /// The service's answer.
    pub message: String,
}

fn failed(resource: impl Into<String>, e: impl std::error::Error) -> ProvisionError {
    ProvisionError {
        resource: resource.into(),
        message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// The client's region, as the bucket's location.
pub fn region(aws: &AwsClients) -> String {
    aws.s3
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into())
}

/// Turns on DynamoDB's time to live on `table`'s `attribute`.
pub async fn enable_ttl(
    aws: &AwsClients,
    table: &str,
    attribute: &str,
) -> Result<(), ProvisionError> {
    aws.dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(attribute)
                .build()
                .map_err(|e| failed(format!("table {table}"), e))?,
        )
        .send()
        .await
        .map_err(|e| failed(format!("table {table} TTL"), e))?;
    Ok(())
}

/// Topic `name`'s ARN, creating the topic if it does not exist; and whether it was created.
pub async fn ensure_topic(aws: &AwsClients, name: &str) -> Result<(String, bool), ProvisionError> {
    let resource = format!("topic {name}");
    match crate::sns::topic_arn(&aws.sns, name).await {
        Ok(arn) => return Ok((arn, false)),
        Err(e) if e.kind != PortErrorKind::NotFound => return Err(lookup_failed(resource, e)),
        Err(_) => {}
    }
    let arn = aws
        .sns
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| failed(resource, e))?
        .topic_arn
        .unwrap_or_default();
    Ok((arn, true))
}

fn lookup_failed(resource: String, e: PortError) -> ProvisionError {
    ProvisionError {
        resource,
        message: e.to_string(),
    }
}

/// Creates bucket `bucket` if it does not exist (whether it was created) and applies its
/// settings: public access blocked, encryption.
pub async fn ensure_bucket(
    aws: &AwsClients,
    bucket: &str,
    region: &str,
) -> Result<bool, ProvisionError> {
    let resource = format!("bucket {bucket}");
    let mut request = aws.s3.create_bucket().bucket(bucket);
    // us-east-1 is the one region that must not be named.
    if region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    // Asked first: in us-east-1 CreateBucket answers 200 for a bucket the caller owns
    // already, so its answer cannot tell a creation.
    let exists = aws.s3.head_bucket().bucket(bucket).send().await.is_ok();
    let created = !exists
        && match request.send().await {
            Ok(_) => true,
            // Created meanwhile by another run.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                false
            }
            Err(e) => return Err(failed(resource, e)),
        };
    aws.s3
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| failed(resource.clone(), e))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .map_err(|e| failed(resource.clone(), e))?,
        )
        .build();
    aws.s3
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| failed(resource.clone(), e))?,
        )
        .send()
        .await
        .map_err(|e| failed(resource, e))?;
    Ok(created)
}

fn key_schema(
    hash: &str,
    range: Option<&str>,
    resource: &str,
) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    std::iter::once((hash, KeyType::Hash))
        .chain(range.map(|r| (r, KeyType::Range)))
        .map(|(name, key_type)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(|e| failed(resource.to_owned(), e))
        })
        .collect()
}

fn string_attribute(name: &str, resource: &str) -> Result<AttributeDefinition, ProvisionError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| failed(resource.to_owned(), e))
}

fn keys_only_index(
    (name, hash, range): (&str, &str, &str),
    resource: &str,
) -> Result<GlobalSecondaryIndex, ProvisionError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(key_schema(hash, Some(range), resource)?))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|e| failed(resource.to_owned(), e))
}

/// Creates `table` with string keys and keys-only global secondary `indexes`, or adds the
/// indexes an existing table lacks (tables from before the console); whether it was created.
pub async fn ensure_table(
    aws: &AwsClients,
    table: &str,
    (hash, range): (&str, Option<&str>),
    indexes: &[(&str, &str, &str)],
) -> Result<bool, ProvisionError> {
    let resource = format!("table {table}");
    let mut attributes: Vec<&str> = std::iter::once(hash).chain(range).collect();
    for (_, h, r) in indexes {
        attributes.extend([*h, *r]);
    }
    attributes.sort();
    attributes.dedup();
    let definitions = attributes
        .iter()
        .map(|a| string_attribute(a, &resource))
        .collect::<Result<Vec<_>, _>>()?;
    let gsis = indexes
        .iter()
        .map(|i| keys_only_index(*i, &resource))
        .collect::<Result<Vec<_>, _>>()?;
    let created = aws
        .dynamodb
        .create_table()
        .table_name(table)
        .set_attribute_definitions(Some(definitions.clone()))
        .set_key_schema(Some(key_schema(hash, range, &resource)?))
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis.clone()))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    let created = match created {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            false
        }
        Err(e) => return Err(failed(resource, e)),
    };
    // A new table takes a moment to become usable on AWS.
    for _ in 0..120 {
        let description = aws
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| failed(resource.clone(), e))?;
        let Some(description) = description.table else {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        };
        if description.table_status != Some(TableStatus::Active) {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        let described = description.global_secondary_indexes.unwrap_or_default();
        // A new index is backfilled before it answers queries.
        if described.iter().any(|i| {
            i.index_status
                .as_ref()
                .is_some_and(|s| *s != aws_sdk_dynamodb::types::IndexStatus::Active)
        }) {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        let existing: Vec<String> = described.into_iter().filter_map(|i| i.index_name).collect();
        // DynamoDB adds one index per UpdateTable call; the next pass adds the next.
        let Some(missing) = gsis.iter().find(|g| !existing.contains(&g.index_name)) else {
            return Ok(created);
        };
        aws.dynamodb
            .update_table()
            .table_name(table)
            .set_attribute_definitions(Some(definitions.clone()))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder()
                    .create(
                        CreateGlobalSecondaryIndexAction::builder()
                            .index_name(&missing.index_name)
                            .set_key_schema(Some(missing.key_schema.clone()))
                            .set_projection(missing.projection.clone())
                            .build()
                            .map_err(|e| failed(resource.clone(), e))?,
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|e| failed(format!("{resource} index {}", missing.index_name), e))?;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Err(ProvisionError {
        resource,
        message: "table did not become ACTIVE within 2 minutes".into(),
    })
}

/// Queue `name`'s URL, creating the queue if it does not exist; and whether it was created.
pub async fn ensure_queue(aws: &AwsClients, name: &str) -> Result<(String, bool), ProvisionError> {
    let resource = format!("queue {name}");
    match crate::sqs::queue_url(&aws.sqs, name).await {
        Ok(url) => return Ok((url, false)),
        Err(e) if e.kind != PortErrorKind::NotFound => return Err(lookup_failed(resource, e)),
        Err(_) => {}
    }
    // Created bare, then configured with SetQueueAttributes: CreateQueue with attributes that
    // differ from an existing queue's fails, and provisioning must also update.
    let output = aws
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| failed(resource, e))?;
    Ok((output.queue_url.unwrap_or_default(), true))
}

/// A queue's ARN.
pub async fn queue_arn(aws: &AwsClients, name: &str, url: &str) -> Result<String, ProvisionError> {
    let output = aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed(format!("queue {name}"), e))?;
    output
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| ProvisionError {
            resource: format!("queue {name}"),
            message: "no QueueArn attribute".into(),
        })
}

/// Sets queue attributes, by their SQS names (`VisibilityTimeout`, `RedrivePolicy`...).
pub async fn set_queue_attributes(
    aws: &AwsClients,
    name: &str,
    url: &str,
    attributes: &[(&str, String)],
) -> Result<(), ProvisionError> {
    let attributes = attributes
        .iter()
        .map(|(attribute, value)| (QueueAttributeName::from(*attribute), value.clone()))
        .collect();
    aws.sqs
        .set_queue_attributes()
        .queue_url(url)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| failed(format!("queue {name}"), e))?;
    Ok(())
}

/// Subscribes `queue_arn` to `topic_arn` with raw delivery, or turns raw delivery on.
pub async fn ensure_subscription(
    aws: &AwsClients,
    topic_arn: &str,
    queue_arn: &str,
) -> Result<(), ProvisionError> {
    let resource = format!("subscription {topic_arn} → {queue_arn}");
    let mut next_token = None;
    loop {
        let page = aws
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| failed(resource.clone(), e))?;
        let existing = page
            .subscriptions()
            .iter()
            .find(|s| s.protocol() == Some("sqs") && s.endpoint() == Some(queue_arn))
            .and_then(|s| s.subscription_arn().map(str::to_owned));
        if let Some(arn) = existing.filter(|a| a.starts_with("arn:")) {
            aws.sns
                .set_subscription_attributes()
                .subscription_arn(arn)
                .attribute_name("RawMessageDelivery")
                .attribute_value("true")
                .send()
                .await
                .map_err(|e| failed(resource.clone(), e))?;
            return Ok(());
        }
        match page.next_token {
            Some(token) => next_token = Some(token),
            None => break,
        }
    }
    aws.sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .return_subscription_arn(true)
        .send()
        .await
        .map_err(|e| failed(resource, e))?;
    Ok(())
}

/// Sends the bucket's object-created events under `prefix` to `queue_arn`. Left as it is when
/// it already does exactly that: each configuration put makes S3 send a test event into the
/// queue, which a re-run on a live deployment should not. `true` when it was put.
pub async fn ensure_notification(
    aws: &AwsClients,
    bucket: &str,
    queue_arn: &str,
    prefix: &str,
) -> Result<bool, ProvisionError> {
    let wanted_events = [
        "s3:ObjectCreated:*",
        "s3:ObjectRemoved:*",
        "s3:LifecycleExpiration:*",
    ];
    if let Ok(current) = aws
        .s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        let queues = current.queue_configurations();
        let same = queues.len() == 1
            && current.topic_configurations().is_empty()
            && current.lambda_function_configurations().is_empty()
            && queues.iter().all(|q| {
                let events: Vec<&str> = q.events().iter().map(|e| e.as_str()).collect();
                let prefixes: Vec<&str> = q
                    .filter()
                    .and_then(|f| f.key())
                    .map(|k| k.filter_rules().iter().filter_map(|r| r.value()).collect())
                    .unwrap_or_default();
                q.queue_arn() == queue_arn
                    && events.len() == wanted_events.len()
                    && wanted_events.iter().all(|e| events.contains(e))
                    && prefixes == [prefix]
            });
        if same {
            return Ok(false);
        }
    }
    let filter = NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(
                    FilterRule::builder()
                        .name(FilterRuleName::Prefix)
                        .value(prefix)
                        .build(),
                )
                .build(),
        )
        .build();
    let queue = QueueConfiguration::builder()
        .id("imgflow-incoming")
        .queue_arn(queue_arn)
        .events(Event::from("s3:ObjectCreated:*"))
        // Deletions too: ingest marks the images of a deleted object `deleted`; and lifecycle
        // expiry, which S3 reports as its own events, not as ObjectRemoved.
        .events(Event::from("s3:ObjectRemoved:*"))
        .events(Event::from("s3:LifecycleExpiration:*"))
        .filter(filter)
        .build()
        .map_err(|e| failed(format!("bucket {bucket} notification"), e))?;
    aws.s3
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue)
                .build(),
        )
        .send()
        .await
        .map_err(|e| failed(format!("bucket {bucket} notification"), e))?;
    Ok(true)
}

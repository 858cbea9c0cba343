//! The adapters against canned SDK responses (`aws-smithy-mocks`): how each modeled error,
//! throttle and partial batch failure is classified, and the conditional writes that make
//! results effectively-once. The emulator tests cover the same paths end to end; these pin
//! the outcomes AWS can produce that the emulator never does (throttling, partial batches).
use std::{collections::HashMap, time::Duration};

use aws_sdk_dynamodb::{
    operation::{
        batch_write_item::BatchWriteItemOutput,
        get_item::GetItemOutput,
        update_item::{UpdateItemError, UpdateItemOutput},
    },
    types::{AttributeValue, DeleteRequest, WriteRequest},
};
use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use imgflow_aws::dynamodb::{index::IndexTable, DynamoImageTable};
use imgflow_catalog::ports::LabelIndex;
use imgflow_messages::{ImageLabeled, ImageRecord, ImageRef, ImageStatus, Label};
use imgflow_runtime::{
    ports::{
        DetectRequest, ImageTable, Join, LabelClaim, LabelDetector, LabelsWrite, ObjectLocation,
        ObjectStore, Publisher, Queue, StoredLabels, WriteOutcome, CLAIM_DONE,
    },
    PortErrorKind,
};

/// A client of `$crate_name` answering from `$rules` in any order, without retries (so one
/// throttle is one answer) and with dummy credentials.
macro_rules! mocked {
    ($crate_name:ident, $rules:expr) => {{
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in $rules {
            interceptor = interceptor.with_rule(rule);
        }
        $crate_name::Client::from_conf(
            $crate_name::Config::builder()
                .behavior_version($crate_name::config::BehaviorVersion::latest())
                .region($crate_name::config::Region::new("us-east-1"))
                .credentials_provider($crate_name::config::Credentials::new(
                    "k", "s", None, None, "test",
                ))
                .retry_config($crate_name::config::retry::RetryConfig::disabled())
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        )
    }};
}

fn image() -> ImageRef {
    ImageRef {
        image_id: "id1".into(),
        trace_id: "t".into(),
        bucket: "b".into(),
        key: "incoming/a.png".into(),
        version_id: None,
        etag: "e".into(),
        received_at: "2026-11-27T05:00:00.000000Z".into(),
    }
}

fn label(name: &str) -> Label {
    Label {
        name: name.into(),
        confidence: 90.0,
        instances: vec![],
        parents: vec![],
        categories: vec![],
    }
}

fn labeled(at: &str) -> ImageLabeled {
    ImageLabeled {
        schema_version: 1,
        image: image(),
        labels: vec![label("Dog")],
        detector: "rekognition".into(),
        label_model_version: "3.0".into(),
        labeled_at: at.into(),
        duplicate_of: None,
    }
}

fn condition_failed() -> Rule {
    mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .build(),
        )
    })
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn table(rules: &[&Rule]) -> DynamoImageTable {
    DynamoImageTable::new(mocked!(aws_sdk_dynamodb, rules.iter().copied()), "images")
}

fn object() -> ObjectLocation {
    ObjectLocation {
        bucket: "b".into(),
        key: "incoming/a.png".into(),
        version_id: None,
    }
}

#[tokio::test]
async fn a_failed_condition_is_superseded_not_an_error() {
    let refused = condition_failed();
    let t = table(&[&refused]);
    let record = ImageRecord::new(
        "id1".into(),
        "b".into(),
        "k".into(),
        "e".into(),
        "2026-11-27T05:00:00.000000Z".into(),
        ImageStatus::Accepted,
    );
    assert_eq!(
        t.write_verdict(&record).await.unwrap(),
        WriteOutcome::Superseded
    );
    let write = t
        .write_labels(&labeled("2026-11-27T05:00:01.000000Z"), "now")
        .await
        .unwrap();
    assert_eq!(write, LabelsWrite::Superseded);
}

#[tokio::test]
async fn a_labels_write_returns_the_labels_it_replaced() {
    let old = imgflow_aws::dynamodb::codec::to_attribute(&vec![label("Cat")]).unwrap();
    let written = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|r| {
            r.return_values() == Some(&aws_sdk_dynamodb::types::ReturnValue::AllOld)
                && r.condition_expression()
                    .is_some_and(|c| c.contains("#labeled_at <= :labeled_at"))
        })
        .then_output(move || {
            UpdateItemOutput::builder()
                .attributes("labeled_at", s("2026-11-27T04:00:00.000000Z"))
                .attributes("labels", old.clone())
                .attributes("thumbnail_error", s("cannot decode"))
                .build()
        });
    let t = table(&[&written]);
    let write = t
        .write_labels(&labeled("2026-11-27T05:00:01.000000Z"), "now")
        .await
        .unwrap();
    assert_eq!(
        write,
        LabelsWrite::Written {
            replaced: Some(StoredLabels {
                labeled_at: "2026-11-27T04:00:00.000000Z".into(),
                labels: vec![label("Cat")],
            }),
            join: Join::Ready,
        },
        "the thumbnail branch had written: this write completes the image"
    );
}

#[tokio::test]
async fn a_refused_claim_is_explained_by_one_consistent_read() {
    let cases = [
        (vec![("label_claim_until", s(CLAIM_DONE))], LabelClaim::Done),
        (
            vec![("status", s("labeled")), ("detector", s("rekognition"))],
            LabelClaim::AlreadyLabeled,
        ),
        (
            vec![("label_claim_until", s("2026-11-27T05:05:00.000000Z"))],
            LabelClaim::HeldByOther {
                until: "2026-11-27T05:05:00.000000Z".into(),
            },
        ),
    ];
    for (attributes, expected) in cases {
        let refused = condition_failed();
        let item: HashMap<String, AttributeValue> = attributes
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .chain([("id".to_owned(), s("id1"))])
            .collect();
        let read = mock!(aws_sdk_dynamodb::Client::get_item)
            .match_requests(|r| r.consistent_read() == Some(true))
            .then_output(move || {
                GetItemOutput::builder()
                    .set_item(Some(item.clone()))
                    .build()
            });
        let t = table(&[&refused, &read]);
        let claim = t
            .claim_labeling("id1", "rekognition", "token", "now", "later")
            .await
            .unwrap();
        assert_eq!(claim, expected);
        assert_eq!(read.num_calls(), 1);
    }
}

#[tokio::test]
async fn throttling_modeled_or_not_is_throttled_and_the_cause_is_kept() {
    let modeled = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::ProvisionedThroughputExceededException(
            aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .build(),
        )
    });
    let e = table(&[&modeled])
        .complete_claim("id1", "token")
        .await
        .unwrap_err();
    assert_eq!(e.kind, PortErrorKind::Throttled);
    assert!(
        e.message
            .starts_with("ProvisionedThroughputExceededException: slow down"),
        "{}",
        e.message
    );
    assert!(
        std::error::Error::source(&e).is_some(),
        "the SDK error is the source"
    );

    // Throttling AWS does not model for the operation arrives as a bare error code.
    let unmodeled = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::generic(ErrorMetadata::builder().code("ThrottlingException").build())
    });
    let e = table(&[&unmodeled])
        .release_claim("id1", "token")
        .await
        .unwrap_err();
    assert_eq!(e.kind, PortErrorKind::Throttled);
}

#[tokio::test]
async fn unprocessed_index_entries_are_sent_again_until_written() {
    let unprocessed = WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .key("pk", s("label#cat"))
                .key("sk", s("x"))
                .build()
                .unwrap(),
        )
        .build();
    let shed_then_done = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .sequence()
        .output(move || {
            BatchWriteItemOutput::builder()
                .unprocessed_items("index", vec![unprocessed.clone()])
                .build()
        })
        .output(|| BatchWriteItemOutput::builder().build())
        .build();
    let index = IndexTable::new(mocked!(aws_sdk_dynamodb, [&shed_then_done]), "index");
    let current = StoredLabels {
        labeled_at: "2026-11-27T05:00:00.000000Z".into(),
        labels: vec![label("Dog")],
    };
    index.index_labels("id1", &current, None).await.unwrap();
    assert_eq!(shed_then_done.num_calls(), 2);
}

#[tokio::test]
async fn a_missing_object_is_not_found() {
    use aws_sdk_s3::operation::{get_object::GetObjectError, head_object::HeadObjectError};
    let missing = mock!(aws_sdk_s3::Client::head_object).then_error(|| {
        HeadObjectError::NotFound(aws_sdk_s3::types::error::NotFound::builder().build())
    });
    let no_key = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
        GetObjectError::NoSuchKey(aws_sdk_s3::types::error::NoSuchKey::builder().build())
    });
    let store = imgflow_aws::s3::S3Store::new(mocked!(aws_sdk_s3, [&missing, &no_key]));
    assert_eq!(
        store.head(&object()).await.unwrap_err().kind,
        PortErrorKind::NotFound
    );
    assert_eq!(
        store.get_range(&object(), 0, 9).await.unwrap_err().kind,
        PortErrorKind::NotFound
    );
}

#[tokio::test]
async fn a_partly_failed_delete_batch_returns_the_handles_left_behind() {
    use aws_sdk_sqs::{operation::delete_message_batch::DeleteMessageBatchOutput, types::*};
    let partial = mock!(aws_sdk_sqs::Client::delete_message_batch).then_output(|| {
        DeleteMessageBatchOutput::builder()
            .successful(
                DeleteMessageBatchResultEntry::builder()
                    .id("0")
                    .build()
                    .unwrap(),
            )
            .failed(
                BatchResultErrorEntry::builder()
                    .id("1")
                    .code("ReceiptHandleIsInvalid")
                    .sender_fault(true)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    });
    let queue = imgflow_aws::sqs::SqsQueue::new(
        mocked!(aws_sdk_sqs, [&partial]),
        "https://sqs.us-east-1.amazonaws.com/123456789012/q".into(),
        "https://sqs.us-east-1.amazonaws.com/123456789012/dlq".into(),
    );
    let failed = queue
        .delete_batch(vec!["h0".into(), "h1".into()])
        .await
        .unwrap();
    assert_eq!(failed, ["h1"]);
}

#[tokio::test]
async fn a_partly_failed_publish_batch_fails_only_its_own_message() {
    use aws_sdk_sns::{operation::publish_batch::PublishBatchOutput, types::*};
    let partial = mock!(aws_sdk_sns::Client::publish_batch).then_output(|| {
        PublishBatchOutput::builder()
            .failed(
                BatchResultErrorEntry::builder()
                    .id("1")
                    .code("InternalError")
                    .sender_fault(false)
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let publisher = imgflow_aws::sns::BatchingPublisher::new(
        mocked!(aws_sdk_sns, [&partial]),
        "arn:aws:sns:us-east-1:123456789012:t".into(),
        Duration::from_millis(200),
    );
    let (first, second) = tokio::join!(publisher.publish("a".into()), async {
        // Into the same batch, second.
        tokio::time::sleep(Duration::from_millis(20)).await;
        publisher.publish("b".into()).await
    });
    assert_eq!(partial.num_calls(), 1, "both went in one batch");
    assert!(first.is_ok());
    assert_eq!(second.unwrap_err().kind, PortErrorKind::Retryable);
}

#[tokio::test]
async fn rekognition_refusals_are_invalid_and_its_throttles_throttled() {
    use aws_sdk_rekognition::{operation::detect_labels::DetectLabelsError, types::error::*};
    let request = DetectRequest {
        object: object(),
        max_labels: 10,
        min_confidence: 50.0,
    };
    let cases: [(Rule, PortErrorKind); 3] = [
        (
            mock!(aws_sdk_rekognition::Client::detect_labels).then_error(|| {
                DetectLabelsError::InvalidImageFormatException(
                    InvalidImageFormatException::builder().build(),
                )
            }),
            PortErrorKind::Invalid,
        ),
        (
            mock!(aws_sdk_rekognition::Client::detect_labels).then_error(|| {
                DetectLabelsError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder().build(),
                )
            }),
            PortErrorKind::Throttled,
        ),
        (
            mock!(aws_sdk_rekognition::Client::detect_labels).then_error(|| {
                DetectLabelsError::InternalServerError(InternalServerError::builder().build())
            }),
            PortErrorKind::Retryable,
        ),
    ];
    for (rule, expected) in cases {
        let detector = imgflow_aws::rekognition::RekognitionDetector::new(
            mocked!(aws_sdk_rekognition, [&rule]),
            mocked!(aws_sdk_s3, Vec::<&Rule>::new()),
        );
        assert_eq!(detector.detect(&request).await.unwrap_err().kind, expected);
    }
}

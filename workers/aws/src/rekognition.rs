//! The `LabelDetector` port on Rekognition DetectLabels.
//! <https://docs.aws.amazon.com/rekognition/latest/APIReference/API_DetectLabels.html>
use aws_sdk_rekognition::{
    operation::detect_labels::DetectLabelsError,
    types::{Image, S3Object},
    Client,
};
use imgflow_messages::{BoundingBox, Instance, Label, NamedRef};

use super::{s3::S3Store, ModeledKind};
use imgflow_runtime::{
    ports::{DetectRequest, Detection, LabelDetector, ObjectStore},
    PortError, PortErrorKind,
};

/// Rekognition reading the image straight from S3 (no bytes pass through the worker).
#[derive(Debug, Clone)]
pub struct RekognitionDetector {
    client: Client,
    /// Asked, when Rekognition cannot read an object, whether the object is there at all.
    objects: S3Store,
}

/// The `error_code` logged when the detector may not read an object that exists.
pub const DETECTOR_ACCESS_DENIED: &str = "detector_access_denied";

impl RekognitionDetector {
    /// A detector on `client`, checking objects Rekognition cannot read with `s3`.
    pub fn new(client: Client, s3: aws_sdk_s3::Client) -> Self {
        Self {
            client,
            objects: S3Store::new(s3),
        }
    }

    /// What an `InvalidS3ObjectException` means. Rekognition answers it both for an object
    /// that is gone and for one it may not read (bucket policy, KMS key, another region,
    /// IRSA): never the image's fault, so never `rejected`. Gone (`NotFound`: the image is
    /// recorded `missing`) when a HEAD says so; otherwise a configuration error for a person
    /// (`Fatal`: the dead-letter queue, where `imgflow dlq replay` picks it up once fixed).
    async fn unreadable(&self, request: &DetectRequest, error: PortError) -> PortError {
        match self.objects.head(&request.object).await {
            Err(e) if e.kind == PortErrorKind::NotFound => e,
            _ => {
                metrics::counter!("imgflow_detector_access_errors_total").increment(1);
                // A fixed code the deployments' log metric filters count for their alarm
                // (`DetectorAccessErrorAlarm` in deploy/cloudformation/imgflow.yaml).
                tracing::error!(
                    error_code = DETECTOR_ACCESS_DENIED,
                    bucket = %request.object.bucket,
                    key = %request.object.key,
                    "the detector may not read the object: a permission or configuration error"
                );
                PortError::new(
                    PortErrorKind::Fatal,
                    error.operation,
                    format!(
                        "Rekognition cannot read the object (InvalidS3ObjectException): check \
                         the bucket policy, the KMS key policy, that the bucket is in the \
                         detector's region, and the task role; {}",
                        error.message
                    ),
                )
            }
        }
    }
}

impl LabelDetector for RekognitionDetector {
    fn name(&self) -> &str {
        "rekognition"
    }

    async fn detect(&self, request: &DetectRequest) -> Result<Detection, PortError> {
        let object = &request.object;
        let image = Image::builder()
            .s3_object(
                S3Object::builder()
                    .bucket(&object.bucket)
                    .name(&object.key)
                    .set_version(object.version_id.clone())
                    .build(),
            )
            .build();
        let output = self
            .client
            .detect_labels()
            .image(image)
            .max_labels(request.max_labels as i32)
            .min_confidence(request.min_confidence)
            .send()
            .await;
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                let operation = format!(
                    "rekognition:DetectLabels s3://{}/{}",
                    object.bucket, object.key
                );
                let unreadable = matches!(
                    e.as_service_error(),
                    Some(DetectLabelsError::InvalidS3ObjectException(_))
                );
                // A refused image is `Invalid` by its modeled error (see `ModeledKind`).
                let error = rekognition_error(operation, e);
                if unreadable {
                    return Err(self.unreadable(request, error).await);
                }
                return Err(error);
            }
        };
        let labels = output
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(to_label)
            .collect();
        Ok(Detection {
            labels,
            label_model_version: output.label_model_version.unwrap_or_default(),
        })
    }
}

fn to_label(label: aws_sdk_rekognition::types::Label) -> Label {
    Label {
        name: label.name.unwrap_or_default(),
        confidence: label.confidence.unwrap_or(0.0),
        instances: label
            .instances
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| {
                let b = i.bounding_box?;
                Some(Instance {
                    bounding_box: BoundingBox {
                        width: b.width.unwrap_or(0.0),
                        height: b.height.unwrap_or(0.0),
                        left: b.left.unwrap_or(0.0),
                        top: b.top.unwrap_or(0.0),
                    },
                    confidence: i.confidence.unwrap_or(0.0),
                })
            })
            .collect(),
        parents: label
            .parents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.name.map(NamedRef::new))
            .collect(),
        categories: label
            .categories
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.name.map(NamedRef::new))
            .collect(),
    }
}

/// Rekognition's modeled errors: an image it refuses can never be labelled there.
impl ModeledKind for aws_sdk_rekognition::Error {
    fn modeled_kind(&self) -> Option<PortErrorKind> {
        use aws_sdk_rekognition::Error as E;
        Some(match self {
            E::ThrottlingException(_)
            | E::ProvisionedThroughputExceededException(_)
            | E::LimitExceededException(_) => PortErrorKind::Throttled,
            E::InternalServerError(_) => PortErrorKind::Retryable,
            E::InvalidImageFormatException(_) | E::ImageTooLargeException(_) => {
                PortErrorKind::Invalid
            }
            E::ResourceNotFoundException(_) => PortErrorKind::NotFound,
            E::AccessDeniedException(_) => PortErrorKind::Fatal,
            _ => return None,
        })
    }
}

service_error_fn!(rekognition_error, aws_sdk_rekognition);

#[cfg(test)]
mod tests {
    use axum::{
        extract::Request,
        http::StatusCode,
        response::{IntoResponse, Response},
    };

    use super::*;
    use imgflow_runtime::ports::ObjectLocation;

    /// A loopback stand-in for Rekognition (answering DetectLabels with the error `code`)
    /// and S3 (answering HEAD as the object is or is not there).
    async fn detect_against(code: &'static str, object_exists: bool) -> PortError {
        let app = axum::Router::new().fallback(move |request: Request| async move {
            let response: Response = if request.headers().contains_key("x-amz-target") {
                (
                    StatusCode::BAD_REQUEST,
                    [("content-type", "application/x-amz-json-1.1")],
                    format!("{{\"__type\":\"{code}\",\"Message\":\"from the test\"}}"),
                )
                    .into_response()
            } else if object_exists {
                (StatusCode::OK, [("etag", "\"abc\"")]).into_response()
            } else {
                StatusCode::NOT_FOUND.into_response()
            };
            response
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let clients = super::super::clients_at(&endpoint, std::time::Duration::from_secs(10)).await;
        let detector = RekognitionDetector::new(clients.rekognition, clients.s3);
        let request = DetectRequest {
            object: ObjectLocation {
                bucket: "b".into(),
                key: "incoming/cat.png".into(),
                version_id: None,
            },
            max_labels: 10,
            min_confidence: 55.0,
        };
        detector.detect(&request).await.unwrap_err()
    }

    #[tokio::test]
    async fn an_object_rekognition_may_not_read_is_a_configuration_error_not_a_bad_image() {
        let denied = detect_against("InvalidS3ObjectException", true).await;
        assert_eq!(denied.kind, PortErrorKind::Fatal, "{denied}");
        assert!(denied.message.contains("KMS key policy"), "{denied}");
        let gone = detect_against("InvalidS3ObjectException", false).await;
        assert_eq!(gone.kind, PortErrorKind::NotFound, "{gone}");
        let bad = detect_against("InvalidImageFormatException", true).await;
        assert_eq!(bad.kind, PortErrorKind::Invalid, "{bad}");
    }
}

//! The `LabelDetector` port on Rekognition DetectLabels.
//! <https://docs.aws.amazon.com/rekognition/latest/APIReference/API_DetectLabels.html>
use aws_sdk_rekognition::{
    types::{Image, S3Object},
    Client,
};
use imgflow_messages::{BoundingBox, Instance, Label, NamedRef};

use super::port_error;
use crate::{
    ports::{DetectRequest, Detection, LabelDetector},
    PortError, PortErrorKind,
};

/// Rekognition reading the image straight from S3 (no bytes pass through the worker).
#[derive(Debug, Clone)]
pub struct RekognitionDetector {
    client: Client,
}

impl RekognitionDetector {
    /// A detector on `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// Errors that mean the image itself can never be labelled, as opposed to throttling,
/// outages or permissions.
const INVALID_IMAGE_CODES: &[&str] = &[
    "InvalidImageFormatException",
    "ImageTooLargeException",
    "InvalidS3ObjectException",
];

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
            .await
            .map_err(|e| {
                let invalid = e
                    .as_service_error()
                    .and_then(|s| aws_smithy_types::error::metadata::ProvideErrorMetadata::code(s))
                    .is_some_and(|c| INVALID_IMAGE_CODES.contains(&c));
                let mut error = port_error(
                    format!(
                        "rekognition:DetectLabels s3://{}/{}",
                        object.bucket, object.key
                    ),
                    e,
                );
                if invalid {
                    error.kind = PortErrorKind::Invalid;
                }
                error
            })?;
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

//! # imgflow-thumbnail
//!
//! `ImageAccepted` → an upright JPEG of at most 320 px at `thumbnails/<id>.jpg` in the image
//! bucket → `thumbnail` on the item → the join with the label branch: whichever of the two
//! finishes last records the completion and publishes `ImageCompleted`
//! (`imgflow_runtime::join`). It runs in parallel with labelling, fed by the same
//! `image-accepted` topic through its own queue.
//!
//! # Layout
//! - [`handler`]: the stage's logic, generic over the ports.
//! - `main.rs`: wiring only.

pub mod handler;

use std::sync::Arc;

use imgflow_aws::{
    dynamodb::{index::IndexTable, DynamoImageTable},
    s3::S3Store,
    sns::BatchingPublisher,
    sqs::SqsQueue,
    AwsClients,
};
use imgflow_runtime::{
    config::{env_in_range, max_decoded_bytes_from_env, ConfigError, WorkerConfig},
    consumer::Consumer,
    PortError,
};

pub use handler::{NoNearIndex, ThumbnailHandler, ThumbnailLimits};

/// The thumbnail consumer on AWS.
pub type ThumbnailConsumer =
    Consumer<SqsQueue, ThumbnailHandler<S3Store, DynamoImageTable, BatchingPublisher, IndexTable>>;

/// Limits from `IMGFLOW_MAX_IMAGE_BYTES` (the most this stage reads of an object, as ingest
/// accepts) and `IMGFLOW_MAX_DECODED_BYTES`.
pub fn limits_from_env() -> Result<ThumbnailLimits, ConfigError> {
    let d = ThumbnailLimits::default();
    Ok(ThumbnailLimits {
        max_bytes: env_in_range("IMGFLOW_MAX_IMAGE_BYTES", d.max_bytes, 1..=15 * 1024 * 1024)?,
        max_decoded_bytes: max_decoded_bytes_from_env()?,
        ..d
    })
}

/// Builds the thumbnail consumer on AWS clients, resolving its queue and topic.
pub async fn build(
    aws: &AwsClients,
    config: &WorkerConfig,
    limits: ThumbnailLimits,
) -> Result<ThumbnailConsumer, PortError> {
    let handler = ThumbnailHandler::new(
        Arc::new(S3Store::new(aws.s3.clone())),
        Arc::new(aws.image_table(&config.names)),
        Arc::new(aws.stage_publisher(config).await?),
        limits,
    )
    .finding_near(Arc::new(aws.index_table(&config.names)));
    Ok(Consumer::new(
        Arc::new(aws.stage_queue(config).await?),
        Arc::new(handler),
        config.consumer.clone(),
    ))
}

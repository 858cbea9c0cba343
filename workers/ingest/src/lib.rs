//! # imgflow-ingest
//!
//! S3 events → checked images. For each new object under `incoming/`: read its header and
//! tail with small ranged GETs, decide `accepted`, `rejected` or `missing`, read its EXIF,
//! write the item, and publish `ImageAccepted` for accepted ones. For each deleted one: mark
//! its images `deleted` and drop their label-index entries, in S3's order (the sequencer)
//! however the events arrive.
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
use imgflow_imaging::probe::Limits;
use imgflow_runtime::{
    config::{env_bool, env_in_range, max_decoded_bytes_from_env, ConfigError, WorkerConfig},
    consumer::Consumer,
    PortError,
};

pub use handler::IngestHandler;

/// The ingest consumer on AWS.
pub type IngestConsumer =
    Consumer<SqsQueue, IngestHandler<S3Store, DynamoImageTable, BatchingPublisher, IndexTable>>;

/// Image limits from `IMGFLOW_MAX_IMAGE_BYTES`, `IMGFLOW_MIN_SIDE_PX`, `IMGFLOW_MAX_SIDE_PX`
/// (defaults: Rekognition's 15 MiB and 80–10,000 px) and `IMGFLOW_MAX_DECODED_BYTES`.
pub fn limits_from_env() -> Result<Limits, ConfigError> {
    let d = Limits::default();
    Ok(Limits {
        max_bytes: env_in_range("IMGFLOW_MAX_IMAGE_BYTES", d.max_bytes, 1..=15 * 1024 * 1024)?,
        min_side: env_in_range("IMGFLOW_MIN_SIDE_PX", d.min_side, 1..=10_000)?,
        max_side: env_in_range("IMGFLOW_MAX_SIDE_PX", d.max_side, 1..=10_000)?,
        max_decoded_bytes: max_decoded_bytes_from_env()?,
    })
}

/// `IMGFLOW_KEEP_GPS`: whether EXIF GPS positions are stored (default false: personal data).
pub fn keep_gps_from_env() -> Result<bool, ConfigError> {
    env_bool("IMGFLOW_KEEP_GPS", false)
}

/// Builds the ingest consumer on AWS clients, resolving its queue and topic.
pub async fn build(
    aws: &AwsClients,
    config: &WorkerConfig,
    limits: Limits,
    keep_gps: bool,
) -> Result<IngestConsumer, PortError> {
    let handler = IngestHandler::new(
        Arc::new(S3Store::new(aws.s3.clone())),
        Arc::new(aws.image_table(&config.names)),
        Arc::new(aws.stage_publisher(config).await?),
        Arc::new(aws.index_table(&config.names)),
        limits,
        config.names.incoming_prefix(),
    )
    .keep_gps(keep_gps);
    Ok(Consumer::new(
        Arc::new(aws.stage_queue(config).await?),
        Arc::new(handler),
        config.consumer.clone(),
    ))
}

//! # imgflow-store
//!
//! `ImageLabeled` → the images table, with a conditional write so duplicates and older
//! messages never overwrite newer labels; → the console's label index; then `ImageStored`
//! for downstream subscribers; then the join with the thumbnail branch
//! (`imgflow_runtime::join`): `ImageCompleted` when the thumbnail was recorded first.
//!
//! # Layout
//! - [`handler`]: the stage's logic, generic over the ports.
//! - `main.rs`: wiring only.

pub mod handler;

use std::sync::Arc;

use imgflow_aws::{
    dynamodb::{index::IndexTable, DynamoImageTable},
    sns::BatchingPublisher,
    sqs::SqsQueue,
    AwsClients,
};
use imgflow_runtime::{config::WorkerConfig, consumer::Consumer, PortError};

pub use handler::StoreHandler;

/// The store consumer on AWS.
pub type StoreConsumer = Consumer<
    SqsQueue,
    StoreHandler<DynamoImageTable, IndexTable, BatchingPublisher, BatchingPublisher>,
>;

/// Builds the store consumer on AWS clients, resolving its queue and topic.
pub async fn build(aws: &AwsClients, config: &WorkerConfig) -> Result<StoreConsumer, PortError> {
    let handler = StoreHandler::new(
        Arc::new(aws.image_table(&config.names)),
        Arc::new(aws.index_table(&config.names)),
        Arc::new(aws.stage_publisher(config).await?),
        Arc::new(aws.completion_publisher(config).await?),
    );
    Ok(Consumer::new(
        Arc::new(aws.stage_queue(config).await?),
        Arc::new(handler),
        config.consumer.clone(),
    ))
}

//! `imgflow-store`: consumes `<prefix>-store`, publishes to `<prefix>-image-stored`.
use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use imgflow_aws::AwsClients;
use imgflow_runtime::{
    config::{Stage, WorkerConfig},
    observability, shutdown, telemetry, throughput,
};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let config = WorkerConfig::from_env(Stage::Store)?;
    if observability::healthcheck_requested() {
        return Ok(observability::healthcheck(config.metrics_addr));
    }
    telemetry::init(config.json_logs);
    let shutdown = shutdown::on_signals();
    let aws = AwsClients::from_env().await;
    let consumer = imgflow_store::build(&aws, &config)
        .await
        .context("connecting the store stage to its queue and topic")?;
    observability::start_for_worker(&config, consumer.health()).await;
    tracing::info!(prefix = %config.names.prefix, "store stage running");
    let index = aws.index_table(&config.names);
    throughput::run_recorded(Arc::new(consumer), shutdown, index, config.stage.as_str()).await;
    Ok(ExitCode::SUCCESS)
}

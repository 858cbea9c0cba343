//! `imgflow-ingest`: consumes `<prefix>-ingest`, publishes to `<prefix>-image-accepted`.
use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use imgflow_aws::AwsClients;
use imgflow_runtime::{
    config::{Stage, WorkerConfig},
    observability, shutdown, telemetry, throughput,
};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let config = WorkerConfig::from_env(Stage::Ingest)?;
    if observability::healthcheck_requested() {
        return Ok(observability::healthcheck(config.metrics_addr));
    }
    let limits = imgflow_ingest::limits_from_env()?;
    telemetry::init(config.json_logs);
    let shutdown = shutdown::on_signals();
    let aws = AwsClients::from_env().await;
    let consumer = imgflow_ingest::build(&aws, &config, limits)
        .await
        .context("connecting the ingest stage to its queue and topic")?;
    observability::start_for_worker(&config, consumer.health()).await;
    tracing::info!(prefix = %config.names.prefix, "ingest stage running");
    let index = aws.index_table(&config.names);
    throughput::run_recorded(Arc::new(consumer), shutdown, index, config.stage.as_str()).await;
    Ok(ExitCode::SUCCESS)
}

//! `imgflow-store`: consumes `<prefix>-store`, publishes to `<prefix>-image-stored`.
use std::process::ExitCode;

use anyhow::Context;
use imgflow_aws::AwsClients;
use imgflow_catalog::throughput;
use imgflow_runtime::{
    config::{Stage, WorkerConfig},
    observability, shutdown, telemetry, usage,
};

// One thread: the stage waits on AWS almost all the time, and its CPU work (decoding, the
// local models) runs on the blocking pool; a multi-threaded scheduler only added cross-thread
// wake-ups (8-16% of the workers' CPU per image in the benchmark's probes; see the README).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    usage::finish(run().await)
}

async fn run() -> anyhow::Result<ExitCode> {
    if let Some(code) = usage::handle_args(
        "store",
        "stores each image's labels in the images table and the console's label index",
    ) {
        return Ok(code);
    }
    let config = WorkerConfig::from_env(Stage::Store)?;
    if observability::healthcheck_requested() {
        return Ok(observability::healthcheck(config.metrics_addr));
    }
    telemetry::init(config.json_logs);
    let shutdown = shutdown::on_signals();
    let aws = AwsClients::from_env().await?;
    let consumer = imgflow_store::build(&aws, &config)
        .await
        .context("connecting the store stage to its queue and topic")?;
    let log = aws.throughput_log(&config.names);
    throughput::run_stage(consumer, &config, log, shutdown)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}

//! `imgflow-label`: consumes `<prefix>-label`, publishes to `<prefix>-image-labeled`.
use std::sync::Arc;

use anyhow::Context;
use imgflow_label::DetectorChoice;
use imgflow_runtime::{
    aws::{rekognition::RekognitionDetector, AwsClients},
    config::{Stage, WorkerConfig},
    shutdown, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = WorkerConfig::from_env(Stage::Label)?;
    let settings = imgflow_label::settings_from_env()?;
    let choice = imgflow_label::detector_from_env()?;
    telemetry::init(config.json_logs);
    let shutdown = shutdown::on_signals();
    let aws = AwsClients::from_env().await;
    let detector = match choice {
        DetectorChoice::Rekognition => RekognitionDetector::new(aws.rekognition.clone()),
    };
    let consumer = imgflow_label::build(&aws, &config, settings, detector)
        .await
        .context("connecting the label stage to its queue and topic")?;
    tracing::info!(prefix = %config.names.prefix, detector = ?choice, "label stage running");
    Arc::new(consumer).run(shutdown).await;
    Ok(())
}

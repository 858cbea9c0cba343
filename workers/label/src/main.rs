//! `imgflow-label`: consumes `<prefix>-label`, publishes to `<prefix>-image-labeled`.
use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use imgflow_aws::{rekognition::RekognitionDetector, s3::S3Store, AwsClients};
use imgflow_catalog::throughput;
use imgflow_label::{CallLog, DetectorChoice, FixedLatencyDetector};
use imgflow_local_detector::{default_models_dir, engine::EngineChoice, LocalDetector, Models};
use imgflow_runtime::{
    config::{env_in_range, env_opt, max_decoded_bytes_from_env, Stage, WorkerConfig},
    observability,
    ports::LabelDetector,
    shutdown, telemetry, usage,
};

// One thread: the stage waits on AWS almost all the time, and its CPU work (decoding, the
// local models) runs on the blocking pool; a multi-threaded scheduler only added cross-thread
// wake-ups (8-16% of the workers' CPU per image in the benchmark's probes; see the README).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    usage::finish(start().await)
}

async fn start() -> anyhow::Result<ExitCode> {
    if let Some(code) = usage::handle_args(
        "label",
        "labels each accepted image with Rekognition or the local models",
    ) {
        return Ok(code);
    }
    let config = WorkerConfig::from_env(Stage::Label)?;
    if observability::healthcheck_requested() {
        return Ok(observability::healthcheck(config.metrics_addr));
    }
    let options = imgflow_label::options_from_env()?;
    let choice = imgflow_label::detector_from_env()?;
    telemetry::init(config.json_logs);
    let shutdown = shutdown::on_signals();
    let aws = AwsClients::from_env().await?;
    tracing::info!(prefix = %config.names.prefix, detector = ?choice, "label stage starting");
    match choice {
        DetectorChoice::Rekognition => {
            let detector = RekognitionDetector::new(aws.rekognition.clone(), aws.s3.clone());
            run(&aws, &config, options, detector, shutdown).await
        }
        DetectorChoice::Fixed => {
            let latency = env_in_range("IMGFLOW_FIXED_LATENCY_MS", 50, 0..=60_000)?;
            let detector = FixedLatencyDetector::new(std::time::Duration::from_millis(latency));
            run(&aws, &config, options, detector, shutdown).await
        }
        DetectorChoice::Local => {
            let dir = default_models_dir();
            let engine = EngineChoice::from_env().map_err(anyhow::Error::msg)?;
            // Loaded once, before the first receive: a missing model or engine library stops
            // the worker at start.
            let mut models = Models::load_on(&dir, engine)
                .with_context(|| format!("loading the local models from {}", dir.display()))?;
            models.decode_budget = max_decoded_bytes_from_env()?;
            let library = match &models.engine {
                EngineChoice::OnnxRuntime { library } => library.display().to_string(),
                EngineChoice::Tract => "compiled in".to_owned(),
            };
            tracing::info!(
                version = %models.version(),
                engine = models.engine.name(),
                %library,
                "local models loaded"
            );
            let detector =
                LocalDetector::new(Arc::new(S3Store::new(aws.s3.clone())), Arc::new(models));
            run(&aws, &config, options, detector, shutdown).await
        }
    }?;
    Ok(ExitCode::SUCCESS)
}

async fn run<D: LabelDetector>(
    aws: &AwsClients,
    config: &WorkerConfig,
    options: imgflow_label::LabelOptions,
    detector: D,
    shutdown: shutdown::Shutdown,
) -> anyhow::Result<()> {
    let call_log = env_opt("IMGFLOW_DETECTOR_CALL_LOG");
    let detector = CallLog::new(detector, call_log.as_deref().map(std::path::Path::new))
        .with_context(|| format!("opening {}", call_log.unwrap_or_default()))?;
    let consumer = imgflow_label::build(aws, config, options, detector)
        .await
        .context("connecting the label stage to its queue and topic")?;
    let log = aws.throughput_log(&config.names);
    throughput::run_stage(consumer, config, log, shutdown)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(())
}

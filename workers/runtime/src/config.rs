//! Configuration: environment variables read once at start, failing with the variable's
//! name; resource names derived from one prefix so many deployments (and parallel tests)
//! share an account without colliding.
use std::{str::FromStr, time::Duration};

use imgflow_messages::THUMBNAIL_PREFIX;

use crate::consumer::ConsumerConfig;

/// A variable that is set but unusable.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub name: String,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads `name`, or `default` when unset or empty.
pub fn env_or<T: FromStr>(name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|e: T::Err| ConfigError {
                name: name.to_owned(),
                value,
                reason: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

/// Reads `name` if set and non-empty.
pub fn env_opt(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `IMGFLOW_MAX_DECODED_BYTES`: most bytes of pixels one decode may hold (default 400 MB,
/// 8-bit RGBA at 10,000 × 10,000 px). Ingest rejects images over it; the API's thumbnails and
/// the local detector never decode more. Set it alike for every process.
pub fn max_decoded_bytes_from_env() -> Result<u64, ConfigError> {
    env_in_range(
        "IMGFLOW_MAX_DECODED_BYTES",
        imgflow_imaging::DEFAULT_MAX_DECODED_BYTES,
        1_000_000..=4_000_000_000,
    )
}

/// Reads `name` and checks it lies in `range`.
pub fn env_in_range<T>(
    name: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    in_range(name, env_opt(name).as_deref(), default, range)
}

/// `raw` (a variable's value, if set) parsed and checked against `range`; errors say what is
/// expected rather than the parser's words ("invalid digit found in string").
pub fn in_range<T>(
    name: &str,
    raw: Option<&str>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let expected = || {
        format!(
            "expected a number from {} to {}",
            range.start(),
            range.end()
        )
    };
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(ConfigError {
            name: name.to_owned(),
            value: raw.to_owned(),
            reason: expected(),
        }),
    }
}

/// A listen address: `IP:port`. Host names are refused (rather than resolved to one of
/// possibly several addresses) with an example.
pub fn env_listen_addr(
    name: &str,
    default: std::net::SocketAddr,
) -> Result<std::net::SocketAddr, ConfigError> {
    match env_opt(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|_| ConfigError {
            name: name.to_owned(),
            value: raw,
            reason: format!(
                "expected IP:port, such as {default} or 0.0.0.0:{} (host names are not resolved)",
                default.port()
            ),
        }),
    }
}

/// The four stages: ingest, then two branches in parallel (label → store, and thumbnail),
/// joined on the item by whichever branch finishes last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// S3 events → checked images.
    Ingest,
    /// Checked images → labels.
    Label,
    /// Labels → DynamoDB.
    Store,
    /// Checked images → a stored thumbnail (in parallel with label → store).
    Thumbnail,
}

/// The topic the join publishes to, once per image, when both branches have written.
pub const COMPLETED_TOPIC: &str = "image-completed";

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Ingest, Stage::Label, Stage::Store, Stage::Thumbnail];

    /// `ingest`, `label`, `store` or `thumbnail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Label => "label",
            Self::Store => "store",
            Self::Thumbnail => "thumbnail",
        }
    }

    /// The topic this stage publishes to on success. Store also publishes to
    /// [`COMPLETED_TOPIC`] when it finishes an image's join; thumbnail publishes only there.
    pub fn output_topic(self) -> &'static str {
        match self {
            Self::Ingest => "image-accepted",
            Self::Label => "image-labeled",
            Self::Store => "image-stored",
            Self::Thumbnail => COMPLETED_TOPIC,
        }
    }

    /// The topic whose events feed this stage's queue (ingest is fed by S3).
    pub fn input_topic(self) -> Option<&'static str> {
        match self {
            Self::Ingest => None,
            Self::Label | Self::Thumbnail => Some(Self::Ingest.output_topic()),
            Self::Store => Some(Self::Label.output_topic()),
        }
    }

    /// Default port of the stage's metrics server.
    pub fn default_metrics_port(self) -> u16 {
        match self {
            Self::Ingest => 9464,
            Self::Label => 9465,
            Self::Store => 9466,
            Self::Thumbnail => 9467,
        }
    }

    /// Default visibility timeout of the stage's queue: above its worst-case handling time
    /// (label: detector retries with backoff; others: a few AWS calls).
    pub fn visibility_timeout(self) -> Duration {
        match self {
            Self::Label => Duration::from_secs(120),
            Self::Ingest | Self::Store | Self::Thumbnail => Duration::from_secs(60),
        }
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ingest" => Ok(Self::Ingest),
            "label" => Ok(Self::Label),
            "store" => Ok(Self::Store),
            "thumbnail" => Ok(Self::Thumbnail),
            other => Err(format!(
                "unknown stage {other:?}; expected ingest, label, store or thumbnail"
            )),
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resource names from the prefix (default `imgflow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The prefix every name starts with.
    pub prefix: String,
    /// The image bucket: `<prefix>-images`, or `IMGFLOW_BUCKET`.
    pub bucket: String,
    /// The images table: `<prefix>-images`, or `IMGFLOW_TABLE`.
    pub table: String,
    /// The console's index table (images by label, per-stage throughput): `<prefix>-index`,
    /// or `IMGFLOW_INDEX_TABLE`.
    pub index_table: String,
    /// Key prefix under which uploads start the pipeline: `incoming/`, or
    /// `IMGFLOW_INCOMING_PREFIX` (the template's `IncomingPrefix`).
    pub incoming: String,
}

impl Names {
    /// Names under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Self {
            bucket: format!("{prefix}-images"),
            table: format!("{prefix}-images"),
            index_table: format!("{prefix}-index"),
            incoming: DEFAULT_INCOMING_PREFIX.to_owned(),
            prefix,
        }
    }

    /// From `IMGFLOW_PREFIX` (default `imgflow`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let prefix: String = env_or("IMGFLOW_PREFIX", "imgflow".to_owned())?;
        let valid = !prefix.is_empty()
            && prefix.len() <= 40
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !prefix.starts_with('-');
        if !valid {
            return Err(ConfigError {
                name: "IMGFLOW_PREFIX".into(),
                value: prefix,
                reason: "must be 1–40 lowercase letters, digits or '-' (it names the bucket)"
                    .into(),
            });
        }
        let mut names = Self::new(prefix);
        if let Some(bucket) = env_opt("IMGFLOW_BUCKET") {
            names.bucket = bucket;
        }
        if let Some(table) = env_opt("IMGFLOW_TABLE") {
            names.table = table;
        }
        if let Some(table) = env_opt("IMGFLOW_INDEX_TABLE") {
            names.index_table = table;
        }
        if let Some(incoming) = env_opt("IMGFLOW_INCOMING_PREFIX") {
            names.incoming = valid_incoming_prefix(incoming)?;
        }
        Ok(names)
    }

    /// Key prefix under which uploads start the pipeline.
    pub fn incoming_prefix(&self) -> &str {
        &self.incoming
    }

    /// A stage's source queue.
    pub fn queue(&self, stage: Stage) -> String {
        format!("{}-{}", self.prefix, stage.as_str())
    }

    /// A stage's dead-letter queue.
    pub fn dead_letter_queue(&self, stage: Stage) -> String {
        format!("{}-{}-dlq", self.prefix, stage.as_str())
    }

    /// A topic, by its short name (`image-accepted`, ...).
    pub fn topic(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }
}

/// Where uploads start the pipeline unless `IMGFLOW_INCOMING_PREFIX` says otherwise.
pub const DEFAULT_INCOMING_PREFIX: &str = "incoming/";

/// A key prefix the S3 notification filter, the IAM grants and the code can all share: a
/// folder (ends with `/`), not the bucket root, printable ASCII without `*` (a wildcard in an
/// IAM resource would widen the grants).
fn valid_incoming_prefix(prefix: String) -> Result<String, ConfigError> {
    let valid = prefix.len() >= 2
        && prefix.len() <= 200
        && prefix.ends_with('/')
        && !prefix.starts_with('/')
        && !prefix.contains("//")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'?')
        // Thumbnails written under the incoming prefix would start the pipeline again.
        && !prefix.starts_with(THUMBNAIL_PREFIX)
        && !THUMBNAIL_PREFIX.starts_with(prefix.as_str());
    if valid {
        Ok(prefix)
    } else {
        Err(ConfigError {
            name: "IMGFLOW_INCOMING_PREFIX".into(),
            value: prefix,
            reason: "must be a folder such as incoming/ (2–200 printable characters, ending with \
                     '/', not starting with '/', no '*' or '?', apart from thumbnails/)"
                .into(),
        })
    }
}

/// What every worker reads at start.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Which stage this process runs.
    pub stage: Stage,
    /// Resource names.
    pub names: Names,
    /// `IMGFLOW_QUEUE_URL`: the source queue's URL; looked up by name when unset.
    pub queue_url: Option<String>,
    /// `IMGFLOW_DLQ_URL`: the dead-letter queue's URL; looked up by name when unset.
    pub dead_letter_queue_url: Option<String>,
    /// `IMGFLOW_TOPIC_ARN`: the output topic's ARN; looked up by name when unset.
    pub topic_arn: Option<String>,
    /// `IMGFLOW_COMPLETED_TOPIC_ARN`: the `image-completed` topic's ARN, for the store stage
    /// (the thumbnail stage's output topic is that one); looked up by name when unset.
    pub completed_topic_arn: Option<String>,
    /// Polling and pacing (`IMGFLOW_CONCURRENCY`, `IMGFLOW_WAIT_TIME_SECS`,
    /// `IMGFLOW_MAX_MESSAGES`, `IMGFLOW_RETRY_MIN_DELAY_SECS`, `IMGFLOW_RETRY_MAX_DELAY_SECS`,
    /// `IMGFLOW_VISIBILITY_TIMEOUT_SECS`, `IMGFLOW_DRAIN_DEADLINE_SECS`,
    /// `IMGFLOW_RECEIVE_WINDOW_MS`).
    pub consumer: ConsumerConfig,
    /// `IMGFLOW_LOG_FORMAT=json` for JSON logs (default text).
    pub json_logs: bool,
    /// `IMGFLOW_PUBLISH_WINDOW_MS` (default 10): how long a publish waits for others to share
    /// an SNS PublishBatch request.
    pub publish_window: Duration,
    /// `IMGFLOW_METRICS_ADDR`: where `/metrics`, `/healthz`, `/readyz` are served (default
    /// 127.0.0.1:9464 ingest, :9465 label, :9466 store, :9467 thumbnail; `off` to disable).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl WorkerConfig {
    /// Reads the configuration of `stage` from the environment.
    pub fn from_env(stage: Stage) -> Result<Self, ConfigError> {
        let mut consumer = ConsumerConfig::new(stage.as_str());
        consumer.concurrency = env_in_range("IMGFLOW_CONCURRENCY", consumer.concurrency, 1..=1000)?;
        consumer.wait_time = Duration::from_secs(env_in_range(
            "IMGFLOW_WAIT_TIME_SECS",
            crate::consumer::DEFAULT_WAIT_TIME.as_secs(),
            0..=20,
        )?);
        consumer.max_messages =
            env_in_range("IMGFLOW_MAX_MESSAGES", consumer.max_messages, 1..=10)?;
        consumer.retry_min_delay =
            Duration::from_secs(env_in_range("IMGFLOW_RETRY_MIN_DELAY_SECS", 2, 0..=43_200)?);
        consumer.retry_max_delay = Duration::from_secs(env_in_range(
            "IMGFLOW_RETRY_MAX_DELAY_SECS",
            300,
            0..=43_200,
        )?);
        if consumer.retry_min_delay > consumer.retry_max_delay {
            return Err(ConfigError {
                name: "IMGFLOW_RETRY_MIN_DELAY_SECS".into(),
                value: consumer.retry_min_delay.as_secs().to_string(),
                reason: format!(
                    "must not exceed IMGFLOW_RETRY_MAX_DELAY_SECS ({})",
                    consumer.retry_max_delay.as_secs()
                ),
            });
        }
        consumer.visibility_timeout = Duration::from_secs(env_in_range(
            "IMGFLOW_VISIBILITY_TIMEOUT_SECS",
            stage.visibility_timeout().as_secs(),
            3..=43_200,
        )?);
        consumer.drain_deadline =
            Duration::from_secs(env_in_range("IMGFLOW_DRAIN_DEADLINE_SECS", 25, 0..=3_600)?);
        consumer.receive_window = Duration::from_millis(env_in_range(
            "IMGFLOW_RECEIVE_WINDOW_MS",
            crate::consumer::DEFAULT_RECEIVE_WINDOW.as_millis() as u64,
            0..=20_000,
        )?);
        Ok(Self {
            stage,
            names: Names::from_env()?,
            queue_url: env_opt("IMGFLOW_QUEUE_URL"),
            dead_letter_queue_url: env_opt("IMGFLOW_DLQ_URL"),
            topic_arn: env_opt("IMGFLOW_TOPIC_ARN"),
            completed_topic_arn: env_opt("IMGFLOW_COMPLETED_TOPIC_ARN"),
            consumer,
            json_logs: log_format_is_json()?,
            metrics_addr: metrics_addr(stage.default_metrics_port())?,
            publish_window: Duration::from_millis(env_in_range(
                "IMGFLOW_PUBLISH_WINDOW_MS",
                10,
                0..=1000,
            )?),
        })
    }
}

/// `IMGFLOW_METRICS_ADDR`, defaulting to loopback on `default_port`; `off` disables.
pub fn metrics_addr(default_port: u16) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match env_opt("IMGFLOW_METRICS_ADDR").as_deref() {
        Some("off") => Ok(None),
        _ => env_or(
            "IMGFLOW_METRICS_ADDR",
            std::net::SocketAddr::from(([127, 0, 0, 1], default_port)),
        )
        .map(Some),
    }
}

/// A `true`/`false` setting; anything else is refused rather than read as false.
pub fn env_bool(name: &str, default: bool) -> Result<bool, ConfigError> {
    match env_opt(name).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(ConfigError {
            name: name.into(),
            value: other.into(),
            reason: "expected true or false".into(),
        }),
    }
}

/// `IMGFLOW_LOG_FORMAT`: `text` (default) or `json`.
pub fn log_format_is_json() -> Result<bool, ConfigError> {
    let format: String = env_or("IMGFLOW_LOG_FORMAT", "text".to_owned())?;
    match format.as_str() {
        "text" => Ok(false),
        "json" => Ok(true),
        _ => Err(ConfigError {
            name: "IMGFLOW_LOG_FORMAT".into(),
            value: format,
            reason: "expected text or json".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_topology() {
        let n = Names::new("imgflow");
        assert_eq!(n.queue(Stage::Label), "imgflow-label");
        assert_eq!(n.dead_letter_queue(Stage::Store), "imgflow-store-dlq");
        assert_eq!(
            n.topic(Stage::Ingest.output_topic()),
            "imgflow-image-accepted"
        );
        assert_eq!(Stage::Store.input_topic(), Some("image-labeled"));
        assert_eq!(Stage::Ingest.input_topic(), None);
    }

    #[test]
    fn worker_settings_come_from_the_environment_with_stage_defaults() {
        // The only test touching these variables, so no other test sees them.
        std::env::set_var("IMGFLOW_DRAIN_DEADLINE_SECS", "7");
        std::env::set_var("IMGFLOW_RECEIVE_WINDOW_MS", "250");
        let label = WorkerConfig::from_env(Stage::Label).unwrap();
        assert_eq!(label.consumer.visibility_timeout, Duration::from_secs(120));
        assert_eq!(label.consumer.drain_deadline, Duration::from_secs(7));
        assert_eq!(label.consumer.receive_window, Duration::from_millis(250));
        std::env::set_var("IMGFLOW_VISIBILITY_TIMEOUT_SECS", "2");
        let err = WorkerConfig::from_env(Stage::Ingest).unwrap_err();
        assert_eq!(err.name, "IMGFLOW_VISIBILITY_TIMEOUT_SECS");
        for name in [
            "IMGFLOW_DRAIN_DEADLINE_SECS",
            "IMGFLOW_RECEIVE_WINDOW_MS",
            "IMGFLOW_VISIBILITY_TIMEOUT_SECS",
        ] {
            std::env::remove_var(name);
        }
    }

    #[test]
    fn incoming_prefix_must_be_a_folder_that_cannot_widen_a_grant() {
        for good in ["incoming/", "uploads/2026/", "a/"] {
            assert_eq!(valid_incoming_prefix(good.into()).unwrap(), good);
        }
        for bad in [
            "",
            "/",
            "incoming",
            "/incoming/",
            "in*/",
            "a//b/",
            "with space/",
            "thumbnails/",
            "thumbnails/new/",
        ] {
            let err = valid_incoming_prefix(bad.into()).unwrap_err();
            assert_eq!(err.name, "IMGFLOW_INCOMING_PREFIX", "{bad:?}");
        }
        assert_eq!(Names::new("p").incoming_prefix(), "incoming/");
    }

    #[test]
    fn numbers_out_of_range_or_not_numbers_say_what_is_expected() {
        assert_eq!(in_range("N", None, 10u32, 1..=1000).unwrap(), 10);
        assert_eq!(in_range("N", Some(" 7 "), 10u32, 1..=1000).unwrap(), 7);
        for bad in ["abc", "0", "1001", "-1", "2.5"] {
            let err = in_range("N", Some(bad), 10u32, 1..=1000).unwrap_err();
            assert_eq!(err.reason, "expected a number from 1 to 1000", "{bad}");
            assert_eq!(err.value, bad);
        }
    }

    #[test]
    fn stages_parse_from_their_names() {
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>().unwrap(), s);
        }
        assert!("labels".parse::<Stage>().is_err());
    }
}

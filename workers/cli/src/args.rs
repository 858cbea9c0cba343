//! The command line: every command, its arguments and the values they accept (stages,
//! statuses and detectors from the pipeline's own lists).
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use imgflow_runtime::config::Stage;

/// imgflow: labels for every image dropped into S3.
#[derive(Debug, Parser)]
#[command(
    name = "imgflow",
    version,
    about,
    after_help = "Examples:
  imgflow provision                        create or update every resource
  imgflow submit photos/ --wait            upload a folder, wait, print the labels
  imgflow results --label dog --limit 10   the newest labeled dogs
  imgflow status                           queue depths and dead letters per stage
  imgflow duplicates                       exact copies and near-duplicates found lately
  imgflow dlq inspect --stage label        why messages were dead-lettered
  imgflow dlq replay --stage label         send them back once fixed
  imgflow dlq purge --stage label --yes    drop them
  imgflow backfill --dry-run               count objects from before the pipeline
  imgflow backfill --rate 50               send them to ingest, 50 a second
  imgflow relabel --detector local         label the local detector's items again
  imgflow reindex                          index items from before the console
  imgflow cost --images 1000000            price a million images

Settings: IMGFLOW_PREFIX (or --prefix), AWS_REGION, AWS_ENDPOINT_URL and the usual AWS
credentials. `imgflow <command> --help` for each command's options."
)]
pub(crate) struct Cli {
    /// Prefix of every resource name.
    #[arg(long, env = "IMGFLOW_PREFIX", default_value = "imgflow", global = true)]
    pub(crate) prefix: String,
    /// On failure, print every cause (the AWS request ids and raw errors) too.
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or update every resource (bucket, table, topics, queues, DLQs, subscriptions).
    Provision {
        /// Receives before a message moves to its dead-letter queue.
        #[arg(long, default_value_t = 5)]
        max_receive_count: u32,
        /// One visibility timeout for every queue, in seconds (default: each stage's own).
        #[arg(long)]
        visibility_timeout_secs: Option<u64>,
    },
    /// Upload files or directories to incoming/, which starts the pipeline.
    Submit {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Wait until every image is processed, then print its results.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        /// Uploads at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Recent items as a table.
    /// Newest first, through the console's indexes (no table scan).
    Results {
        /// Rows to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only images with this label or parent (any case).
        #[arg(long)]
        label: Option<String>,
        /// Only images in this status.
        #[arg(long, value_parser = status_parser())]
        status: Option<imgflow_messages::ImageStatus>,
        /// Refresh every two seconds until interrupted.
        #[arg(long)]
        watch: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Per stage: messages waiting, in flight, and in the dead-letter queue.
    Status,
    /// Exact copies (labelled from their original, no detector call) and near-duplicates (the
    /// same photo resized, re-encoded or cropped) among the most recently found pairs.
    Duplicates {
        /// How many of the most recent pairs to read.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
    },
    /// Label matching items again (a new model version, or a switch of detector); the labels
    /// and their label-index entries are replaced as they arrive.
    #[command(group(clap::ArgGroup::new("which").required(true).multiple(true)))]
    Relabel {
        /// Items labeled by this model version.
        #[arg(long, group = "which")]
        model_version: Option<String>,
        /// Items labeled by this detector.
        #[arg(long, group = "which", value_parser = clap::builder::PossibleValuesParser::new(imgflow_messages::DETECTORS))]
        detector: Option<String>,
        /// Items with this label or parent (any case).
        #[arg(long, group = "which")]
        label: Option<String>,
        /// Items in this status (default: labeled).
        #[arg(long, group = "which", value_parser = status_parser())]
        status: Option<imgflow_messages::ImageStatus>,
        /// At most this many images per second (default: no limit).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<f64>,
        /// Count the matching items; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Send the objects already under the incoming prefix (from before the pipeline, or whose
    /// events were lost) to ingest, skipping those with a final item; safe to run again.
    Backfill {
        /// Only keys under this prefix, inside the incoming prefix (`2024/`). (`--prefix` is
        /// every command's resource-name prefix.)
        #[arg(long, default_value = "")]
        key_prefix: String,
        /// Resume after this key (an interrupted run names it).
        #[arg(long)]
        start_after: Option<String>,
        /// At most this many objects per second (default: no limit).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<f64>,
        /// Count what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Take the objects from an S3 Inventory report (its manifest.json, CSV data files)
        /// instead of listing the bucket.
        #[arg(long)]
        inventory: Option<PathBuf>,
    },
    /// Give items from before the web console their gallery keys and label-index entries
    /// (scans the table once; safe to run again).
    Reindex,
    /// Cost per N images from the benchmark's measured calls, next to Step Functions + Lambda.
    Cost {
        /// How many images.
        #[arg(long, default_value_t = 1_000_000.0)]
        images: f64,
        /// A benchmark summary (`scripts/bench pipeline` writes target/bench/pipeline-summary.json,
        /// used when present; otherwise the figures recorded with the README's benchmark).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Label-index entries per image: its label and parent names (Rekognition's default
        /// 10 labels with their parents come to about 15).
        #[arg(long, default_value_t = 15.0)]
        index_entries: f64,
        /// The share of images that are exact copies of another (0 to 1): labelled from their
        /// original's labels, with no detector call.
        #[arg(long, default_value_t = 0.0, value_parser = share)]
        copies: f64,
    },
    /// Inspect, replay or purge a stage's dead-letter queue.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqAction {
    /// Count, age of the oldest, messages by reason, a few bodies. Consumes nothing.
    Inspect {
        /// The stage whose dead-letter queue it is.
        #[arg(long, value_parser = stage_parser())]
        stage: Stage,
        /// Messages to read for the histogram.
        #[arg(long, default_value_t = 100)]
        sample: usize,
    },
    /// Move messages back to the stage's queue (deleted from the DLQ only once sent).
    Replay {
        /// The stage whose dead-letter queue it is.
        #[arg(long, value_parser = stage_parser())]
        stage: Stage,
        /// Show what would move; move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Move at most this many (default: no limit).
        #[arg(long)]
        max: Option<usize>,
        /// At most this many per second.
        #[arg(long)]
        rate: Option<f64>,
        /// Only messages whose error class or text contains this.
        #[arg(long)]
        reason: Option<String>,
        /// Messages replayed this often already stay in the DLQ.
        #[arg(long, default_value_t = 3)]
        max_replays: u32,
    },
    /// Delete every message in the stage's dead-letter queue.
    Purge {
        /// The stage whose dead-letter queue it is.
        #[arg(long, value_parser = stage_parser())]
        stage: Stage,
        /// Required: purging cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

pub(crate) fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!(
            "{value:?} is not a positive number of objects per second"
        )),
    }
}

/// The stages, listed in help and checked, from `Stage::ALL`.
fn stage_parser() -> impl clap::builder::TypedValueParser<Value = Stage> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Stage::ALL.map(Stage::as_str))
        .map(|stage| stage.parse::<Stage>().expect("one of Stage::ALL"))
}

/// The statuses, listed in help and checked, from `ImageStatus::ALL`.
fn status_parser() -> impl clap::builder::TypedValueParser<Value = imgflow_messages::ImageStatus> {
    use clap::builder::TypedValueParser;
    use imgflow_messages::ImageStatus;
    clap::builder::PossibleValuesParser::new(ImageStatus::ALL.map(ImageStatus::as_str))
        .map(|status| ImageStatus::parse(&status).expect("one of ImageStatus::ALL"))
}

/// A share between 0 and 1.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{text:?} is not a share between 0 and 1 (0.25 is a quarter)"
        )),
    }
}

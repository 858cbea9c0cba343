//! `imgflow`: provision, submit, results, status, reindex, cost, dlq.
use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use imgflow_aws::{
    s3::S3Store,
    sqs::{queue_url, QueueAdmin},
    AwsClients,
};
use imgflow_cli::{cost, errors, submit};
use imgflow_operations::{dlq, provision, results, status};
use imgflow_runtime::{
    config::{Names, Stage},
    telemetry,
};
use indicatif::{ProgressBar, ProgressStyle};

/// imgflow: labels for every image dropped into S3.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Examples:
  imgflow provision                        create or update every resource
  imgflow submit photos/ --wait            upload a folder, wait, print the labels
  imgflow results --label dog --limit 10   the newest labeled dogs
  imgflow status                           queue depths and dead letters per stage
  imgflow dlq inspect --stage label        why messages were dead-lettered
  imgflow dlq replay --stage label         send them back once fixed
  imgflow dlq purge --stage label --yes    drop them
  imgflow reindex                          index items from before the console
  imgflow cost --images 1000000            price a million images

Settings: IMGFLOW_PREFIX (or --prefix), AWS_REGION, AWS_ENDPOINT_URL and the usual AWS
credentials. `imgflow <command> --help` for each command's options."
)]
struct Cli {
    /// Prefix of every resource name.
    #[arg(long, env = "IMGFLOW_PREFIX", default_value = "imgflow", global = true)]
    prefix: String,
    /// On failure, print every cause (the AWS request ids and raw errors) too.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
        /// Only images in this status: accepted, labeled, rejected, missing.
        #[arg(long, value_parser = parse_status)]
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
    /// Give items from before the web console their gallery keys and label-index entries
    /// (scans the table once; safe to run again).
    Reindex,
    /// Cost per N images from the benchmark's measured calls, next to Step Functions + Lambda.
    Cost {
        /// How many images.
        #[arg(long, default_value_t = 1_000_000.0)]
        images: f64,
        /// The benchmark summary (`scripts/bench pipeline` writes it).
        #[arg(long, default_value = "target/bench/pipeline-summary.json")]
        report: PathBuf,
        /// Label-index entries per image: its label and parent names (Rekognition's default
        /// 10 labels with their parents come to about 15).
        #[arg(long, default_value_t = 15.0)]
        index_entries: f64,
    },
    /// Inspect, replay or purge a stage's dead-letter queue.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// Count, age of the oldest, messages by reason, a few bodies. Consumes nothing.
    Inspect {
        /// ingest, label or store.
        #[arg(long)]
        stage: Stage,
        /// Messages to read for the histogram.
        #[arg(long, default_value_t = 100)]
        sample: usize,
    },
    /// Move messages back to the stage's queue (deleted from the DLQ only once sent).
    Replay {
        /// ingest, label or store.
        #[arg(long)]
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
        /// ingest, label or store.
        #[arg(long)]
        stage: Stage,
        /// Required: purging cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (verbose, prefix) = (cli.verbose, cli.prefix.clone());
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = errors::hint(&e, &prefix) {
                eprintln!("  {hint}");
            }
            if verbose {
                for cause in e.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                    if let Some(source) = std::error::Error::source(cause) {
                        eprintln!("  detail: {source:?}");
                    }
                }
            } else if e.chain().count() > 1 {
                eprintln!("  (-v shows the causes)");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Logs go to stderr and stay quiet unless asked for: the output is for people.
    if std::env::var_os("RUST_LOG").is_some() {
        telemetry::init(false);
    }
    std::env::set_var("IMGFLOW_PREFIX", &cli.prefix);
    let names = Names::from_env()?;
    let aws = AwsClients::from_env().await;
    anyhow::ensure!(
        aws.s3.config().region().is_some(),
        "no AWS region set: set AWS_REGION (or a region in your AWS profile)"
    );
    match cli.command {
        Command::Provision {
            max_receive_count,
            visibility_timeout_secs,
        } => {
            let settings = provision::ProvisionSettings {
                max_receive_count,
                visibility_timeout: visibility_timeout_secs.map(Duration::from_secs),
            };
            let done = provision::provision(&aws, &names, &settings).await?;
            let mut lines = vec![(
                "bucket",
                done.bucket.clone(),
                format!(
                    "  (notifications for {} → {})",
                    names.incoming_prefix(),
                    names.queue(Stage::Ingest)
                ),
            )];
            lines.push(("table", done.table.clone(), String::new()));
            lines.push((
                "table",
                names.index_table.clone(),
                "  (the console's label index and throughput)".into(),
            ));
            let mut topics: Vec<_> = done.topic_arns.keys().cloned().collect();
            topics.sort();
            lines.extend(topics.into_iter().map(|t| ("topic", t, String::new())));
            for stage in Stage::ALL {
                for queue in [names.queue(stage), names.dead_letter_queue(stage)] {
                    lines.push(("queue", queue, String::new()));
                }
            }
            for (kind, name, note) in &lines {
                let state = if done.created.contains(&format!("{kind} {name}")) {
                    "created"
                } else {
                    "exists, settings applied"
                };
                println!("{kind:<7} {name:<40} {state}{note}");
            }
            println!(
                "{} created, {} already there",
                done.created.len(),
                lines.len() - done.created.len()
            );
        }
        Command::Submit {
            paths,
            wait,
            timeout_secs,
            concurrency,
        } => {
            let uploads = submit::collect(&paths, names.incoming_prefix())?;
            anyhow::ensure!(!uploads.is_empty(), "no files under {paths:?}");
            let bar = ProgressBar::new(uploads.len() as u64).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                    .context("progress template")?,
            );
            let store = S3Store::new(aws.s3.clone());
            let submitted = submit::submit(&store, &names.bucket, uploads, concurrency, |s| {
                bar.set_message(s.key.clone());
                bar.inc(1);
            })
            .await?;
            bar.finish_and_clear();
            let bytes: u64 = submitted.iter().map(|s| s.size).sum();
            eprintln!(
                "submitted {} files ({bytes} bytes) to s3://{}/{}",
                submitted.len(),
                names.bucket,
                names.incoming_prefix()
            );
            if wait {
                let table = aws.image_table(&names);
                let ids: Vec<String> = submitted.iter().map(|s| s.image_id.clone()).collect();
                let (records, done) =
                    results::wait_for_final(&table, &ids, Duration::from_secs(timeout_secs))
                        .await?;
                print!("{}", results::table(&records));
                if !done {
                    for line in results::unfinished(&submitted_keys(&submitted), &records) {
                        eprintln!("  {line}");
                    }
                }
                anyhow::ensure!(
                    done,
                    "{} of {} images were not processed within {timeout_secs} s (above: where each waits; `imgflow status` shows the queues)",
                    ids.len() - records.iter().filter(|r| r.status.is_final()).count(),
                    ids.len()
                );
            }
        }
        Command::Results {
            limit,
            watch,
            json,
            label,
            status,
        } => {
            let catalog = aws.catalog(&names);
            let query = imgflow_catalog::ports::ImageQuery {
                status,
                label,
                cursor: None,
                limit,
            };
            loop {
                let records = results::newest(&catalog, &query).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&records)?);
                } else {
                    // Clearing the screen only makes sense on one; a pipe gets plain tables.
                    if watch && std::io::stdout().is_terminal() {
                        print!("\x1b[2J\x1b[H");
                    }
                    print!("{}", results::table(&records));
                    if records.len() == limit {
                        println!("(the newest {limit}; --limit for more)");
                    }
                }
                if !watch {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        Command::Reindex => {
            let index = aws.index_table(&names);
            let report = aws.image_table(&names).reindex(&index).await?;
            println!(
                "{} items read; {} given gallery keys; {} labeled items indexed by label",
                report.items, report.keyed, report.labeled
            );
        }
        Command::Status => {
            let statuses = status::status(&aws, &names).await?;
            print!("{}", status::table(&statuses));
        }
        Command::Dlq { action } => run_dlq(&aws, &names, action).await?,
        Command::Cost {
            images,
            report,
            index_entries,
        } => {
            let text = std::fs::read_to_string(&report).with_context(|| {
                format!(
                    "reading {} (run scripts/bench pipeline first)",
                    report.display()
                )
            })?;
            let (plumbing, local) = cost::read_summary(&text)?;
            let prices = cost::Prices::builtin();
            print!(
                "{}",
                cost::markdown(
                    &cost::table(&prices, &plumbing, local.as_ref(), images, index_entries),
                    images,
                    &prices
                )
            );
        }
    }
    Ok(())
}

async fn run_dlq(aws: &AwsClients, names: &Names, action: DlqAction) -> anyhow::Result<()> {
    let admin = |queue: String| async move {
        let url = queue_url(&aws.sqs, &queue).await?;
        anyhow::Ok(QueueAdmin::new(aws.sqs.clone(), url))
    };
    match action {
        DlqAction::Inspect { stage, sample } => {
            let dlq = admin(names.dead_letter_queue(stage)).await?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64;
            let report = dlq::inspect(&dlq, sample, now_ms).await?;
            println!(
                "{}: {} messages",
                names.dead_letter_queue(stage),
                report.count
            );
            if let Some(age) = report.oldest_age {
                println!("oldest: {} s ago", age.as_secs());
            }
            if !report.by_reason.is_empty() {
                println!("\nby reason (of {} read):", report.read);
                for ((class, text), n) in &report.by_reason {
                    println!("{n:>6}  {class}  {text}");
                }
            }
            for sample in &report.samples {
                println!("\nsample: {sample}");
            }
        }
        DlqAction::Replay {
            stage,
            dry_run,
            max,
            rate,
            reason,
            max_replays,
        } => {
            let dlq = admin(names.dead_letter_queue(stage)).await?;
            let source = queue_url(&aws.sqs, &names.queue(stage)).await?;
            let total = dlq.depth().await?;
            let bar = ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                    .context("progress template")?,
            );
            let options = dlq::ReplayOptions {
                dry_run,
                max: max.unwrap_or(usize::MAX),
                rate_per_sec: rate,
                reason,
                max_replays,
            };
            let summary = dlq::replay(&dlq, &source, &options, |s| {
                bar.set_position(
                    (s.moved + s.would_move + s.filtered_out + s.over_limit.len() + s.failed)
                        as u64,
                );
            })
            .await?;
            bar.finish_and_clear();
            if dry_run {
                println!(
                    "dry run: {} would move to {}",
                    summary.would_move,
                    names.queue(stage)
                );
            } else {
                println!("moved {} to {}", summary.moved, names.queue(stage));
            }
            println!(
                "left in the DLQ: {} not matching --reason, {} failed sends, {} dead-lettered during this replay",
                summary.filtered_out, summary.failed, summary.arrived_during
            );
            if !summary.over_limit.is_empty() {
                println!(
                    "{} replayed {max_replays} times already and left in the DLQ (fix the cause, or raise --max-replays): {}",
                    summary.over_limit.len(),
                    summary.over_limit.join(", ")
                );
            }
        }
        DlqAction::Purge { stage, yes } => {
            anyhow::ensure!(
                yes,
                "refusing to purge {} without --yes (it cannot be undone)",
                names.dead_letter_queue(stage)
            );
            admin(names.dead_letter_queue(stage)).await?.purge().await?;
            println!("purged {}", names.dead_letter_queue(stage));
        }
    }
    Ok(())
}

/// `(image id, key)` of each submitted file.
fn submitted_keys(submitted: &[submit::Submitted]) -> Vec<(String, String)> {
    submitted
        .iter()
        .map(|s| (s.image_id.clone(), s.key.clone()))
        .collect()
}

fn parse_status(value: &str) -> Result<imgflow_messages::ImageStatus, String> {
    imgflow_messages::ImageStatus::parse(value)
        .ok_or_else(|| format!("{value:?} is not one of accepted, labeled, rejected, missing"))
}

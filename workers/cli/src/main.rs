//! `imgflow`: provision, submit, results, status.
use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use imgflow_cli::{provision, results, status, submit};
use imgflow_runtime::{
    aws::{dynamodb::DynamoImageTable, s3::S3Store, AwsClients},
    config::{Names, Stage},
    telemetry,
};
use indicatif::{ProgressBar, ProgressStyle};

/// imgflow: labels for every image dropped into S3.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Prefix of every resource name.
    #[arg(long, env = "IMGFLOW_PREFIX", default_value = "imgflow", global = true)]
    prefix: String,
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
    Results {
        /// Rows to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Refresh every two seconds until interrupted.
        #[arg(long)]
        watch: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Per stage: messages waiting, in flight, and in the dead-letter queue.
    Status,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr and stay quiet unless asked for: the output is for people.
    if std::env::var_os("RUST_LOG").is_some() {
        telemetry::init(false);
    }
    std::env::set_var("IMGFLOW_PREFIX", &cli.prefix);
    let names = Names::from_env()?;
    let aws = AwsClients::from_env().await;
    match cli.command {
        Command::Provision { max_receive_count } => {
            let settings = provision::ProvisionSettings { max_receive_count };
            let done = provision::provision(&aws, &names, &settings).await?;
            println!(
                "bucket  {}  (notifications for {} → {})",
                done.bucket,
                names.incoming_prefix(),
                names.queue(Stage::Ingest)
            );
            println!("table   {}", done.table);
            let mut topics: Vec<_> = done.topic_arns.values().collect();
            topics.sort();
            for arn in topics {
                println!("topic   {arn}");
            }
            for stage in Stage::ALL {
                println!(
                    "queue   {}  (DLQ {})",
                    done.queue_urls[&stage], done.dead_letter_queue_urls[&stage]
                );
            }
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
                let table = aws_table(&aws, &names);
                let ids: Vec<String> = submitted.iter().map(|s| s.image_id.clone()).collect();
                let (records, done) =
                    results::wait_for_final(&table, &ids, Duration::from_secs(timeout_secs))
                        .await?;
                print!("{}", results::table(&records));
                anyhow::ensure!(
                    done,
                    "{} of {} images were not processed within {timeout_secs} s",
                    ids.len() - records.iter().filter(|r| r.status.is_final()).count(),
                    ids.len()
                );
            }
        }
        Command::Results { limit, watch, json } => {
            let table = aws_table(&aws, &names);
            loop {
                let records = table.recent(limit).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&records)?);
                } else {
                    if watch {
                        print!("\x1b[2J\x1b[H");
                    }
                    print!("{}", results::table(&records));
                }
                if !watch {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        Command::Status => {
            let statuses = status::status(&aws, &names).await?;
            print!("{}", status::table(&statuses));
        }
    }
    Ok(())
}

fn aws_table(aws: &AwsClients, names: &Names) -> DynamoImageTable {
    DynamoImageTable::new(aws.dynamodb.clone(), names.table.clone())
}

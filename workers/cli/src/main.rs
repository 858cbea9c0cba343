//! `imgflow`: provision, submit, results, status, backfill, relabel, reindex, cost, dlq.
use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Parser;
use imgflow_aws::{
    s3::S3Store,
    sqs::{queue_url, QueueAdmin},
    AwsClients,
};
use imgflow_cli::{cost, errors, submit};
use imgflow_operations::{backfill, provision, relabel, results, status};
use imgflow_runtime::{
    config::{Names, Stage},
    telemetry,
};
use indicatif::{ProgressBar, ProgressStyle};

mod args;
mod dlq_command;

use args::{Cli, Command};

/// The region the command called, for the error hints.
static REGION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (verbose, prefix) = (cli.verbose, cli.prefix.clone());
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let region = REGION.get().map_or("(none)", String::as_str);
            if let Some(hint) = errors::hint(&e, &prefix, region) {
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
    // Offline: prices and recorded figures, no AWS settings needed.
    if let Command::Cost {
        images,
        report,
        index_entries,
        copies,
    } = cli.command
    {
        return print_cost(images, report, index_entries, copies);
    }
    std::env::set_var("IMGFLOW_PREFIX", &cli.prefix);
    let names = Names::from_env()?;
    let aws = AwsClients::from_env().await?;
    let _ = REGION.set(aws.region());
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
            let submit::Collected { uploads, skipped } =
                submit::collect(&paths, names.incoming_prefix())?;
            if !skipped.is_empty() {
                let list: Vec<String> = skipped
                    .iter()
                    .map(|s| s.path.display().to_string())
                    .collect();
                eprintln!(
                    "skipped {} file(s) that are not PNG or JPEG images (by their first bytes): {}",
                    skipped.len(),
                    list.join(", ")
                );
            }
            let named_but_skipped: Vec<String> = skipped
                .iter()
                .filter(|s| s.named)
                .map(|s| s.path.display().to_string())
                .collect();
            anyhow::ensure!(
                !uploads.is_empty(),
                "no PNG or JPEG images under {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
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
                    // Where they wait: a stage with messages and none being worked on has no
                    // worker receiving.
                    if let Ok(stages) = status::status(&aws, &names).await {
                        for line in results::stalled(&stages) {
                            eprintln!("  {line}");
                        }
                    }
                }
                anyhow::ensure!(
                    done,
                    "{} of {} images were not processed within {timeout_secs} s (above: where each waits)",
                    ids.len() - records.iter().filter(|r| r.status.is_final()).count(),
                    ids.len()
                );
                let refused = records
                    .iter()
                    .filter(|r| {
                        matches!(
                            r.status,
                            imgflow_messages::ImageStatus::Rejected
                                | imgflow_messages::ImageStatus::Missing
                        )
                    })
                    .count();
                anyhow::ensure!(
                    refused == 0,
                    "{refused} of {} images were not labeled (above: the reasons)",
                    ids.len()
                );
            }
            anyhow::ensure!(
                named_but_skipped.is_empty(),
                "not submitted, not PNG or JPEG images: {}",
                named_but_skipped.join(", ")
            );
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
        Command::Backfill {
            key_prefix: prefix,
            start_after,
            rate,
            dry_run,
            inventory,
        } => {
            let incoming = names.incoming_prefix();
            let prefix = if prefix.starts_with(incoming) {
                prefix
            } else {
                format!("{incoming}{prefix}")
            };
            let ingest_url = queue_url(&aws.sqs, &names.queue(Stage::Ingest)).await?;
            let ingest = QueueAdmin::new(aws.sqs.clone(), ingest_url.clone());
            let s3 = S3Store::new(aws.s3.clone());
            let catalog = aws.catalog(&names);
            let target = backfill::Target {
                s3: &s3,
                bucket: &names.bucket,
                catalog: &catalog,
                ingest: &ingest,
                ingest_url: &ingest_url,
            };
            let options = backfill::Options {
                prefix,
                start_after,
                rate_per_sec: rate,
                dry_run,
            };
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            let verb = if dry_run { "would enqueue" } else { "enqueued" };
            let summary = |p: &backfill::Progress| {
                format!(
                    "listed {}, skipped {} (already final), {verb} {}{}",
                    p.listed,
                    p.skipped,
                    p.enqueued,
                    match p.likely_copies {
                        0 => String::new(),
                        n => format!(", {n} of them likely exact copies"),
                    }
                )
            };
            let started = std::time::Instant::now();
            let progress = |p: &backfill::Progress| {
                let per_second = p.listed as f64 / started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!("{} ({per_second:.0} objects/s)", summary(p)));
            };
            let result = match inventory {
                None => backfill::run(&target, &options, progress).await,
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let manifest = backfill::inventory::parse_manifest(&text, &names.bucket)
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("reading {}", path.display()))?;
                    backfill::run_inventory(&target, &manifest, &options, progress).await
                }
            };
            bar.finish_and_clear();
            let done = result?;
            println!("{}", summary(&done));
            if dry_run {
                // Each enqueued object is one detector call, but for the likely copies (an
                // image that turns out not to be one costs none either).
                if done.likely_copies > 0 {
                    println!(
                        "{} of them have the ETag and size of another: most likely exact copies, \
                         labelled from their original with no detector call",
                        done.likely_copies
                    );
                }
                println!(
                    "at most {}",
                    cost::detector_preview(
                        done.enqueued - done.likely_copies,
                        rate,
                        &cost::Prices::builtin()
                    )
                );
            } else {
                println!(
                    "follow the labelling with `imgflow status` (waiting messages, rate and ETA \
                     per stage) or the console's Pipeline page"
                );
            }
        }
        Command::Relabel {
            model_version,
            detector,
            label,
            status,
            rate,
            dry_run,
        } => {
            let label_url = queue_url(&aws.sqs, &names.queue(Stage::Label)).await?;
            let queue = QueueAdmin::new(aws.sqs.clone(), label_url.clone());
            let options = relabel::Options {
                selection: relabel::Selection {
                    model_version,
                    detector,
                    label,
                    status,
                },
                generation: uuid::Uuid::new_v4().simple().to_string(),
                rate_per_sec: rate,
                dry_run,
            };
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            let verb = if dry_run {
                "would relabel"
            } else {
                "sent for relabelling"
            };
            let summary = |p: &relabel::Progress| format!("read {}, {verb} {}", p.read, p.matched);
            let catalog = aws.catalog(&names);
            let result = relabel::run(&catalog, &queue, &label_url, &options, |p| {
                bar.set_message(summary(p))
            })
            .await;
            bar.finish_and_clear();
            let done = result?;
            println!("{} (generation {})", summary(&done), options.generation);
            if dry_run {
                if done.copies > 0 {
                    println!(
                        "{} of them are exact copies of another image: a relabel asks the \
                         detector for each of them too",
                        done.copies
                    );
                }
                println!(
                    "{}",
                    cost::detector_preview(done.matched as u64, rate, &cost::Prices::builtin())
                );
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
            // The rates are a bonus: an index table that cannot be read leaves them out.
            let rates = status::rates(&aws, &names).await.ok();
            print!("{}", status::table(&statuses, rates.as_deref()));
        }
        Command::Duplicates { limit } => {
            let found = imgflow_operations::duplicates::recent(&aws, &names, limit.into()).await?;
            print!("{}", imgflow_operations::duplicates::text(&found));
        }
        Command::Dlq { action } => dlq_command::run(&aws, &names, action).await?,
        Command::Cost { .. } => unreachable!("answered before any AWS setup"),
    }
    Ok(())
}

/// `imgflow cost`: a fresh `scripts/bench pipeline` summary when there is one (or `--report`),
/// else the figures recorded with the README's benchmark; says which on stderr.
fn print_cost(
    images: f64,
    report: Option<PathBuf>,
    index_entries: f64,
    copies: f64,
) -> anyhow::Result<()> {
    let fresh = PathBuf::from(cost::FRESH_SUMMARY);
    let (text, source) = match report {
        Some(path) => (
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
            format!("measured figures from {}", path.display()),
        ),
        None => match std::fs::read_to_string(&fresh) {
            Ok(text) => (
                text,
                format!("measured figures from your benchmark run, {}", fresh.display()),
            ),
            Err(_) => (
                cost::RECORDED_SUMMARY.to_owned(),
                "measured figures recorded with the README's benchmark (scripts/bench pipeline measures yours)".to_owned(),
            ),
        },
    };
    eprintln!("using {source}");
    let (plumbing, local) = cost::read_summary(&text)
        .with_context(|| format!("reading the benchmark summary ({source})"))?;
    let unmeasured: Vec<&str> = Stage::ALL
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !plumbing.stages.iter().any(|m| m == s))
        .collect();
    if !unmeasured.is_empty() {
        eprintln!(
            "note: these figures have no {} stage (recorded before it existed): its requests and \
             CPU are not in the table; scripts/bench pipeline measures every stage",
            unmeasured.join(", ")
        );
    }
    let prices = cost::Prices::builtin();
    print!(
        "{}",
        cost::markdown(
            &cost::table(
                &prices,
                &plumbing,
                local.as_ref(),
                images,
                index_entries,
                copies
            ),
            images,
            &prices
        )
    );
    Ok(())
}

/// `(image id, key)` of each submitted file.
fn submitted_keys(submitted: &[submit::Submitted]) -> Vec<(String, String)> {
    submitted
        .iter()
        .map(|s| (s.image_id.clone(), s.key.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::args::Cli;

    /// The values an argument lists in its help (and accepts), wherever it appears.
    fn possible_values(argument: &str) -> Vec<Vec<String>> {
        fn walk(command: &clap::Command, argument: &str, out: &mut Vec<Vec<String>>) {
            for arg in command.get_arguments() {
                if arg.get_id() == argument {
                    out.push(
                        arg.get_possible_values()
                            .iter()
                            .map(|v| v.get_name().to_owned())
                            .collect(),
                    );
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, argument, out);
            }
        }
        let mut out = Vec::new();
        walk(&Cli::command(), argument, &mut out);
        out
    }

    /// Help, accepted values and names come from one place: the stages, statuses and
    /// detectors the pipeline has.
    #[test]
    fn help_lists_exactly_the_values_the_pipeline_has() {
        let stages: Vec<String> = imgflow_runtime::config::Stage::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let listed = possible_values("stage");
        assert_eq!(listed.len(), 3, "dlq inspect, replay, purge");
        assert!(listed.iter().all(|values| *values == stages), "{listed:?}");
        let statuses: Vec<String> = imgflow_messages::ImageStatus::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let listed = possible_values("status");
        assert_eq!(listed.len(), 2, "results, relabel");
        assert!(
            listed.iter().all(|values| *values == statuses),
            "{listed:?}"
        );
        assert_eq!(
            possible_values("detector"),
            vec![imgflow_messages::DETECTORS.map(String::from).to_vec()]
        );
        assert_eq!(Cli::command().get_name(), "imgflow");
        assert!(Cli::command()
            .render_version()
            .starts_with(&format!("imgflow {}", env!("CARGO_PKG_VERSION"))));
    }

    /// The `imgflow …` rows of the README's Commands table: (command path, flags named).
    fn readme_commands() -> Vec<(Vec<String>, Vec<String>)> {
        let readme = include_str!("../../../README.md");
        let start = readme.find("## Commands").expect("a Commands section");
        let end = start
            + readme[start..]
                .find("\n## ")
                .unwrap_or(readme.len() - start);
        readme[start..end]
            .lines()
            .filter_map(|line| line.strip_prefix("| `imgflow "))
            .map(|rest| {
                // A table cell escapes its pipes: `inspect\|replay`.
                let usage = rest[..rest.find('`').unwrap()].replace("\\|", "|");
                let words: Vec<&str> = usage.split_whitespace().collect();
                let path = words
                    .iter()
                    .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '|'))
                    .map(|w| w.to_string())
                    .collect();
                let flags = usage
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .filter(|w| w.starts_with("--"))
                    .map(|w| w.to_string())
                    .collect();
                (path, flags)
            })
            .collect()
    }

    #[test]
    fn the_readme_lists_every_command_with_real_flags() {
        let cli = Cli::command();
        let documented = readme_commands();
        assert!(documented.len() >= 7, "{documented:?}");
        let mut seen = Vec::new();
        for (path, flags) in &documented {
            let name = &path[0];
            let command = cli.find_subcommand(name).unwrap_or_else(|| {
                panic!("README documents `imgflow {name}`, which does not exist")
            });
            seen.push(name.clone());
            // `dlq inspect|replay|purge`: the flags belong to one of the subcommands.
            let mut candidates = vec![command.clone()];
            if let Some(actions) = path.get(1) {
                candidates = actions
                    .split('|')
                    .map(|a| {
                        command
                            .find_subcommand(a)
                            .unwrap_or_else(|| panic!("README documents `imgflow {name} {a}`"))
                            .clone()
                    })
                    .collect();
            }
            for flag in flags {
                let long = flag.trim_start_matches("--");
                assert!(
                    candidates
                        .iter()
                        .any(|c| c.get_arguments().any(|a| a.get_long() == Some(long))),
                    "README shows `imgflow {name} … {flag}`, which it does not take"
                );
            }
        }
        for command in cli.get_subcommands() {
            assert!(
                seen.iter().any(|s| s == command.get_name()),
                "`imgflow {}` is missing from the README's Commands table",
                command.get_name()
            );
        }
    }

    #[test]
    fn help_names_every_command_with_an_example() {
        let help = Cli::command().render_long_help().to_string();
        for command in Cli::command().get_subcommands() {
            let example = format!("imgflow {}", command.get_name());
            assert!(help.contains(&example), "no example of `{example}`");
        }
    }
}

//! `imgflow dlq inspect|replay|purge`.
use anyhow::Context;
use imgflow_aws::{
    sqs::{queue_url, QueueAdmin},
    AwsClients,
};
use imgflow_operations::dlq;
use imgflow_runtime::config::Names;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::DlqAction;

pub(crate) async fn run(aws: &AwsClients, names: &Names, action: DlqAction) -> anyhow::Result<()> {
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
            // What was asked for did not happen: say why, and exit non-zero.
            if let Some(why) = summary.first_failure {
                anyhow::bail!(
                    "{} message(s) could not be sent back to {} and stay in the DLQ: {why}",
                    summary.failed,
                    names.queue(stage)
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

//! `imgflow dlq inspect|replay|purge`: dead letters you can read without consuming, and move
//! back to their stage without losing any.
//!
//! Replay receives from the dead-letter queue, sends to the stage's queue, and deletes from the
//! dead-letter queue only after the send succeeded: a message is never lost, at worst sent
//! twice (harmless: every stage is idempotent). The moto emulator lacks
//! `StartMessageMoveTask`, so this path is used everywhere; it also allows filters.
use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use imgflow_aws::sqs::{QueueAdmin, StoredMessage};
use imgflow_runtime::PortError;

/// Attribute counting how often a message was replayed; a message past `--max-replays` stays.
pub const REPLAYS: &str = "imgflow.replays";
/// How long a pass hides the messages it reads (then releases them).
const HOLD: Duration = Duration::from_secs(60);

/// Why a message is in the dead-letter queue: the worker's error class, or the redrive.
pub fn error_class(m: &StoredMessage) -> &str {
    m.attributes
        .get("imgflow.error_class")
        .map_or("redriven (maxReceiveCount reached)", String::as_str)
}

/// The worker's error text, if it dead-lettered the message itself.
pub fn error_text(m: &StoredMessage) -> &str {
    m.attributes.get("imgflow.error").map_or("", String::as_str)
}

fn replays(m: &StoredMessage) -> u32 {
    m.attributes
        .get(REPLAYS)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What `dlq inspect` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspection {
    /// Messages in the queue (approximate).
    pub count: u64,
    /// Messages read for the histogram.
    pub read: usize,
    /// Age of the oldest message read.
    pub oldest_age: Option<Duration>,
    /// Messages by (error class, error text).
    pub by_reason: BTreeMap<(String, String), usize>,
    /// A few bodies, shortened.
    pub samples: Vec<String>,
}

/// Reads up to `max` messages, counts them by reason, and leaves every one in the queue.
pub async fn inspect(dlq: &QueueAdmin, max: usize, now_ms: i64) -> Result<Inspection, PortError> {
    let count = dlq.depth().await?;
    let messages = dlq.take(max, HOLD).await?;
    let release = dlq.release(&messages).await;
    let mut by_reason = BTreeMap::new();
    for m in &messages {
        *by_reason
            .entry((error_class(m).to_owned(), shorten(error_text(m), 160)))
            .or_default() += 1;
    }
    let oldest_age = messages
        .iter()
        .filter_map(|m| m.sent_at_ms)
        .min()
        .map(|sent| Duration::from_millis(now_ms.saturating_sub(sent).max(0) as u64));
    let samples = messages
        .iter()
        .take(3)
        .map(|m| shorten(&m.body, 300))
        .collect();
    release?;
    Ok(Inspection {
        count,
        read: messages.len(),
        oldest_age,
        by_reason,
        samples,
    })
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Report what would move, move nothing.
    pub dry_run: bool,
    /// Move at most this many.
    pub max: usize,
    /// At most this many sends per second.
    pub rate_per_sec: Option<f64>,
    /// Only messages whose error class or text contains this.
    pub reason: Option<String>,
    /// Messages already replayed this often stay in the dead-letter queue.
    pub max_replays: u32,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySummary {
    /// Sent back to the stage's queue and deleted from the dead-letter queue.
    pub moved: usize,
    /// Would have moved (dry run).
    pub would_move: usize,
    /// Not matching `--reason`; left in place.
    pub filtered_out: usize,
    /// Replayed `max_replays` times already; left in place. Message ids.
    pub over_limit: Vec<String>,
    /// Sends that failed; left in place.
    pub failed: usize,
    /// Why the first of them failed (an access denied, a throttle, …).
    pub first_failure: Option<String>,
    /// Dead-lettered after the replay started (its own replays failing again, mostly); left
    /// for the next run, so one run never cycles a message.
    pub arrived_during: usize,
}

/// Moves messages from `dlq` to `source_url`, calling `progress` after each.
pub async fn replay(
    dlq: &QueueAdmin,
    source_url: &str,
    options: &ReplayOptions,
    progress: impl Fn(&ReplaySummary),
) -> Result<ReplaySummary, PortError> {
    let mut summary = ReplaySummary::default();
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut kept: Vec<StoredMessage> = Vec::new();
    let pause = options
        .rate_per_sec
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    'pass: loop {
        let batch = dlq.take(10, HOLD).await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            if kept.iter().any(|k| k.message_id == m.message_id) {
                // Seen in this pass already: its hold ran out; the pass is complete.
                kept.push(m);
                break 'pass;
            }
            if m.sent_at_ms.is_some_and(|sent| sent >= started_ms) {
                summary.arrived_during += 1;
                kept.push(m);
                continue;
            }
            let matches = options
                .reason
                .as_deref()
                .is_none_or(|r| error_class(&m).contains(r) || error_text(&m).contains(r));
            if !matches {
                summary.filtered_out += 1;
                kept.push(m);
            } else if replays(&m) >= options.max_replays {
                summary.over_limit.push(m.message_id.clone());
                kept.push(m);
            } else if summary.moved + summary.would_move >= options.max {
                kept.push(m);
                break 'pass;
            } else if options.dry_run {
                summary.would_move += 1;
                kept.push(m);
            } else {
                let mut attributes: HashMap<String, String> = m
                    .attributes
                    .iter()
                    // The next failure writes its own reason.
                    .filter(|(k, _)| !k.starts_with("imgflow.") || k.as_str() == REPLAYS)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                attributes.insert(REPLAYS.into(), (replays(&m) + 1).to_string());
                match dlq.send(source_url, &m.body, &attributes).await {
                    // Deleted only once the copy is safely in the stage's queue.
                    Ok(()) => match dlq.delete(&m).await {
                        Ok(()) => summary.moved += 1,
                        Err(e) => {
                            tracing::warn!(error = %e, "sent but not deleted; it will be replayed again");
                            summary.moved += 1;
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "send failed; the message stays in the dead-letter queue");
                        summary.failed += 1;
                        summary.first_failure.get_or_insert_with(|| e.to_string());
                        kept.push(m);
                    }
                }
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
            }
            progress(&summary);
        }
    }
    dlq.release(&kept).await?;
    Ok(summary)
}

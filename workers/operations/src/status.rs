//! `imgflow status`: per stage, messages waiting, in flight and dead-lettered.
use imgflow_aws::{
    sqs::{queue_depth, queue_url},
    AwsClients,
};
use imgflow_runtime::{
    config::{Names, Stage},
    PortError,
};

/// One stage's queue depths (SQS' approximate counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageStatus {
    /// The stage.
    pub stage: Stage,
    /// Messages waiting to be received.
    pub visible: u64,
    /// Messages sent back to wait (a budget window, an original being labelled), not yet
    /// visible: counted as waiting.
    pub delayed: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
    /// Messages in the dead-letter queue.
    pub dead_lettered: u64,
}

/// Reads every stage's queue depths.
pub async fn status(aws: &AwsClients, names: &Names) -> Result<Vec<StageStatus>, PortError> {
    status_at(aws, &queue_urls(aws, names).await?).await
}

/// Every stage's queue and dead-letter queue URL, in pipeline order.
pub async fn queue_urls(
    aws: &AwsClients,
    names: &Names,
) -> Result<Vec<(Stage, String, String)>, PortError> {
    let mut urls = Vec::new();
    for stage in Stage::ALL {
        urls.push((
            stage,
            queue_url(&aws.sqs, &names.queue(stage)).await?,
            queue_url(&aws.sqs, &names.dead_letter_queue(stage)).await?,
        ));
    }
    Ok(urls)
}

/// Reads the depths of queues already looked up with [`queue_urls`].
pub async fn status_at(
    aws: &AwsClients,
    urls: &[(Stage, String, String)],
) -> Result<Vec<StageStatus>, PortError> {
    // All at once: the console asks every two seconds.
    let reads = urls.iter().map(|(stage, queue, dead_letters)| async move {
        let (queue, dead_letters) = futures::try_join!(
            queue_depth(&aws.sqs, queue),
            queue_depth(&aws.sqs, dead_letters)
        )?;
        Ok::<_, PortError>(StageStatus {
            stage: *stage,
            visible: queue.visible,
            delayed: queue.delayed,
            in_flight: queue.in_flight,
            dead_lettered: dead_letters.visible,
        })
    });
    futures::future::try_join_all(reads).await
}

/// How long a stage's backlog (`waiting` + `in_flight` messages) takes at `per_minute`
/// messages a minute, as a person reads it: `done`, `—` (nothing measured yet), `40 s`,
/// `12 min`, `3.5 h`.
pub fn eta(backlog: u64, per_minute: f64) -> String {
    if backlog == 0 {
        return "done".into();
    }
    if per_minute <= 0.0 {
        return "—".into();
    }
    let seconds = backlog as f64 / per_minute * 60.0;
    if seconds < 90.0 {
        format!("{:.0} s", seconds.ceil())
    } else if seconds < 90.0 * 60.0 {
        format!("{:.0} min", (seconds / 60.0).ceil())
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// Messages each stage completed per minute lately (the last five minutes, the current one
/// counted for the part that passed), from the throughput the workers record.
pub async fn rates(aws: &AwsClients, names: &Names) -> Result<Vec<f64>, PortError> {
    let index = aws.index_table(names);
    let now = chrono::Utc::now();
    let since = imgflow_catalog::keys::minute_of(now - chrono::Duration::minutes(4));
    let counts = futures::future::try_join_all(
        Stage::ALL
            .iter()
            .map(|stage| index.completed_since(stage.as_str(), &since)),
    )
    .await?;
    let minutes = 4.0 + f64::from(chrono::Timelike::second(&now).max(1)) / 60.0;
    Ok(counts
        .iter()
        .map(|c| c.iter().map(|(_, n)| *n).sum::<u64>() as f64 / minutes)
        .collect())
}

/// Renders the depths as a table; with `rates` (per stage, as [`rates`] reads them) also the
/// recent rate and the backlog's ETA.
pub fn table(statuses: &[StageStatus], rates: Option<&[f64]>) -> String {
    // The widest stage name sets the first column (thumbnail is nine letters).
    let width = Stage::ALL
        .iter()
        .map(|s| s.as_str().len())
        .max()
        .unwrap_or(5);
    let mut out = format!(
        "{:<width$}  {:>8}  {:>9}  {:>5}",
        "STAGE", "WAITING", "IN FLIGHT", "DLQ"
    );
    if rates.is_some() {
        out.push_str(&format!("  {:>8}  {:>7}", "PER MIN", "ETA"));
    }
    out.push('\n');
    for (n, s) in statuses.iter().enumerate() {
        let flag = if s.dead_lettered > 0 {
            "  ← messages in the dead-letter queue"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<width$}  {:>8}  {:>9}  {:>5}",
            s.stage.as_str(),
            s.visible + s.delayed,
            s.in_flight,
            s.dead_lettered
        ));
        if let Some(rate) = rates.and_then(|r| r.get(n)) {
            out.push_str(&format!(
                "  {:>8.1}  {:>7}",
                rate,
                eta(s.visible + s.delayed + s.in_flight, *rate)
            ));
        }
        out.push_str(flag);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_is_the_backlog_at_the_recent_rate() {
        assert_eq!(eta(0, 0.0), "done");
        assert_eq!(eta(10, 0.0), "—");
        assert_eq!(eta(10, 60.0), "10 s");
        assert_eq!(eta(600, 60.0), "10 min");
        assert_eq!(eta(36_000, 60.0), "10.0 h");
    }

    #[test]
    fn every_row_lines_up_with_the_header() {
        let statuses: Vec<StageStatus> = Stage::ALL
            .iter()
            .map(|&stage| StageStatus {
                stage,
                visible: 12345,
                delayed: 0,
                in_flight: 7,
                dead_lettered: 0,
            })
            .collect();
        let text = table(&statuses, Some(&[12.5; 4]));
        let ends: Vec<usize> = text
            .lines()
            .map(|line| {
                line.find("WAITING")
                    .map_or_else(|| line.find("12345").unwrap() + 5, |at| at + 7)
            })
            .collect();
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{text}");
    }
}

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
            in_flight: queue.in_flight,
            dead_lettered: dead_letters.visible,
        })
    });
    futures::future::try_join_all(reads).await
}

/// Renders the depths as a table.
pub fn table(statuses: &[StageStatus]) -> String {
    // The widest stage name sets the first column (thumbnail is nine letters).
    let width = Stage::ALL
        .iter()
        .map(|s| s.as_str().len())
        .max()
        .unwrap_or(5);
    let mut out = format!(
        "{:<width$}  {:>8}  {:>9}  {:>5}\n",
        "STAGE", "WAITING", "IN FLIGHT", "DLQ"
    );
    for s in statuses {
        let flag = if s.dead_lettered > 0 {
            "  ← messages in the dead-letter queue"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<width$}  {:>8}  {:>9}  {:>5}{flag}\n",
            s.stage.as_str(),
            s.visible,
            s.in_flight,
            s.dead_lettered
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_lines_up_with_the_header() {
        let statuses: Vec<StageStatus> = Stage::ALL
            .iter()
            .map(|&stage| StageStatus {
                stage,
                visible: 12345,
                in_flight: 7,
                dead_lettered: 0,
            })
            .collect();
        let text = table(&statuses);
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

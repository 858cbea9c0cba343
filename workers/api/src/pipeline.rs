//! What the Pipeline page shows: per stage, the queue depths `imgflow status` reads and the
//! completed messages per minute the workers record in the index table.
use std::{sync::Arc, time::Duration};

use chrono::Timelike;
use imgflow_aws::{sqs::QueueAdmin, AwsClients};
use imgflow_catalog::keys::minute_of;
use imgflow_messages::ImageRecord;
use imgflow_operations::{dlq, duplicates, status};
use imgflow_runtime::{
    config::{Names, Stage},
    PortError,
};
use serde::Serialize;

/// How long the page waits between refreshes.
pub const REFRESH: Duration = Duration::from_secs(2);

/// Minutes of throughput the page shows.
pub const MINUTES: usize = 10;

/// One stage now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageView {
    /// `ingest`, `label` or `store`.
    pub stage: String,
    /// Messages waiting.
    pub visible: u64,
    /// Messages being worked on.
    pub in_flight: u64,
    /// Messages in the stage's dead-letter queue.
    pub dead_lettered: u64,
    /// Completed messages per minute, oldest first, the current (partial) minute last.
    pub per_minute: Vec<u64>,
    /// Completed per minute over the last five minutes (the current one counted for the part
    /// of it that has passed).
    pub rate_per_minute: f64,
    /// Completed in the whole window.
    pub recent_total: u64,
    /// When the messages waiting and in flight are done at that rate (`done`, `—`, `12 min`).
    pub eta: String,
}

/// The whole pipeline now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineView {
    /// Where uploads start the pipeline (`s3://bucket/incoming/`).
    pub source: String,
    /// Stages in pipeline order.
    pub stages: Vec<StageView>,
}

/// Reads the pipeline's state from SQS and the index table.
#[derive(Debug, Clone)]
pub struct PipelineProbe {
    aws: AwsClients,
    names: Names,
    /// Looked up once: queue URLs do not change while the queues exist.
    urls: Arc<tokio::sync::OnceCell<Vec<(Stage, String, String)>>>,
}

impl PipelineProbe {
    /// An `imgflow` command for this deployment, as it pastes: its region and prefix given,
    /// and its endpoint when it is not AWS's (pasted without it, the command would act on the
    /// real AWS of whoever runs it).
    pub fn command(&self, args: &str) -> String {
        let endpoint = self
            .aws
            .endpoint
            .as_ref()
            .map(|url| format!("AWS_ENDPOINT_URL={url} "))
            .unwrap_or_default();
        format!(
            "{endpoint}AWS_REGION={} imgflow {args} --prefix {}",
            self.aws.region(),
            self.names.prefix
        )
    }

    /// A probe of the resources under `names`.
    pub fn new(aws: AwsClients, names: Names) -> Self {
        Self {
            aws,
            names,
            urls: Arc::default(),
        }
    }

    /// Every stage's queue and dead-letter queue URL, looked up on first use.
    async fn urls(&self) -> Result<&[(Stage, String, String)], PortError> {
        let urls = self
            .urls
            .get_or_try_init(|| status::queue_urls(&self.aws, &self.names))
            .await?;
        Ok(urls)
    }

    /// Every stage's depths and throughput.
    pub async fn view(&self) -> Result<PipelineView, PortError> {
        let depths = status::status_at(&self.aws, self.urls().await?).await?;
        let index = self.aws.index_table(&self.names);
        let now = chrono::Utc::now();
        let minutes: Vec<String> = (0..MINUTES)
            .rev()
            .map(|ago| minute_of(now - chrono::Duration::minutes(ago as i64)))
            .collect();
        let counts = futures::future::try_join_all(
            depths
                .iter()
                .map(|d| index.completed_since(d.stage.as_str(), &minutes[0])),
        )
        .await?;
        let mut stages = Vec::new();
        for (depth, counts) in depths.into_iter().zip(counts) {
            let per_minute: Vec<u64> = minutes
                .iter()
                .map(|m| {
                    counts
                        .iter()
                        .find(|(minute, _)| minute == m)
                        .map_or(0, |(_, n)| *n)
                })
                .collect();
            let rate_per_minute = rate(&per_minute, now.second());
            stages.push(StageView {
                stage: depth.stage.as_str().to_owned(),
                visible: depth.visible + depth.delayed,
                in_flight: depth.in_flight,
                dead_lettered: depth.dead_lettered,
                eta: status::eta(
                    depth.visible + depth.delayed + depth.in_flight,
                    rate_per_minute,
                ),
                rate_per_minute,
                recent_total: per_minute.iter().sum(),
                per_minute,
            });
        }
        Ok(PipelineView {
            source: format!(
                "s3://{}/{}",
                self.names.bucket,
                self.names.incoming_prefix()
            ),
            stages,
        })
    }

    /// `image_id`'s near-duplicates still live, with their distance, nearest first.
    pub async fn near(&self, image_id: &str) -> Result<Vec<(ImageRecord, u32)>, PortError> {
        use imgflow_runtime::ports::NearIndex;
        let matches = self.aws.index_table(&self.names).near(image_id).await?;
        let ids: Vec<String> = matches
            .iter()
            .take(20)
            .map(|m| m.image_id.clone())
            .collect();
        let records = self.aws.catalog(&self.names).batch_get(&ids).await?;
        Ok(matches
            .into_iter()
            .filter_map(|m| {
                let record = records.get(&m.image_id).filter(|r| !r.status.is_gone())?;
                Some((record.clone(), m.distance))
            })
            .collect())
    }

    /// What the Duplicates page shows: the most recent 100 pairs, grouped.
    pub async fn duplicates(&self) -> Result<duplicates::Duplicates, PortError> {
        duplicates::recent(&self.aws, &self.names, 100).await
    }

    /// What `imgflow dlq inspect` shows for `stage`: every message stays in the queue, but
    /// each one read counts a receive.
    pub async fn dead_letters(&self, stage: Stage) -> Result<dlq::Inspection, PortError> {
        let admin = self.dead_letter_queue(stage).await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        dlq::inspect(&admin, 10, now_ms).await
    }

    /// How many messages `stage`'s dead-letter queue holds, reading none of them.
    pub async fn dead_letter_count(&self, stage: Stage) -> Result<dlq::Inspection, PortError> {
        Ok(dlq::Inspection {
            count: self.dead_letter_queue(stage).await?.depth().await?,
            ..dlq::Inspection::default()
        })
    }

    async fn dead_letter_queue(&self, stage: Stage) -> Result<QueueAdmin, PortError> {
        let url = self
            .urls()
            .await?
            .iter()
            .find(|(s, _, _)| *s == stage)
            .map(|(_, _, dead_letters)| dead_letters.clone())
            .expect("every stage has its URLs");
        Ok(QueueAdmin::new(self.aws.sqs.clone(), url))
    }
}

/// Completed per minute over the last five buckets of `per_minute`, the last of which is the
/// current minute, `seconds_in` seconds old.
fn rate(per_minute: &[u64], seconds_in: u32) -> f64 {
    let recent = &per_minute[per_minute.len().saturating_sub(5)..];
    let minutes = (recent.len() as f64 - 1.0) + f64::from(seconds_in.max(1)) / 60.0;
    recent.iter().sum::<u64>() as f64 / minutes
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn the_rate_counts_the_current_minute_for_the_part_that_passed() {
        assert_eq!(rate(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 30), 0.0);
        assert_eq!(rate(&[9, 9, 9, 9, 9, 60, 60, 60, 60, 30], 30), 60.0);
        assert_eq!(
            rate(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 9], 0),
            9.0 / (4.0 + 1.0 / 60.0)
        );
    }
}

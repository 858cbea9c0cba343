//! Per-stage throughput for the console: each replica adds its completed messages to the
//! current minute's item in the index table every few seconds. One small write per replica per
//! period, whatever the rate, and replicas add up (DynamoDB `ADD`).
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::{
    consumer::{Consumer, Handler},
    ports::{Queue, ThroughputLog},
    shutdown::Shutdown,
};

/// The minute a count belongs to, as the throughput log keys it: `YYYY-MM-DDTHH:MM` (UTC).
pub fn minute_of(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M").to_string()
}

/// How often a replica writes its count.
pub const PERIOD: Duration = Duration::from_secs(5);

/// Writes `completed`'s growth under `stage` every `period` until `shutdown`, then once more.
/// A failed write keeps its count for the next period; a crash loses at most one period.
pub async fn record<L: ThroughputLog>(
    log: L,
    stage: String,
    completed: Arc<AtomicU64>,
    period: Duration,
    mut shutdown: Shutdown,
) {
    let mut written = completed.load(Ordering::Relaxed);
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(period) => false,
            _ = shutdown.requested() => true,
        };
        let now = completed.load(Ordering::Relaxed);
        if now > written {
            let minute = minute_of(chrono::Utc::now());
            match log.add_completed(&stage, &minute, now - written).await {
                Ok(()) => written = now,
                Err(e) => tracing::warn!(error = %e, "recording throughput failed; will retry"),
            }
        }
        if stopping {
            return;
        }
    }
}

/// Runs `consumer` until `shutdown`, recording its throughput in `log` meanwhile, and the
/// last count once it has drained.
pub async fn run_recorded<Q: Queue, H: Handler, L: ThroughputLog>(
    consumer: Arc<Consumer<Q, H>>,
    shutdown: Shutdown,
    log: L,
    stage: &str,
) {
    let (stop, stopped) = crate::shutdown::channel();
    let recorder = tokio::spawn(record(
        log,
        stage.to_owned(),
        consumer.completed(),
        PERIOD,
        stopped,
    ));
    consumer.run(shutdown).await;
    stop.trigger();
    let _ = recorder.await;
}

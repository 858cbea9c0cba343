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
    aws::index::{minute_of, IndexTable},
    consumer::{Consumer, Handler},
    ports::Queue,
    shutdown::Shutdown,
};

/// How often a replica writes its count.
pub const PERIOD: Duration = Duration::from_secs(5);

/// Writes `completed`'s growth under `stage` every `period` until `shutdown`, then once more.
/// A failed write keeps its count for the next period; a crash loses at most one period.
pub async fn record(
    index: IndexTable,
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
            match index.add_completed(&stage, &minute, now - written).await {
                Ok(()) => written = now,
                Err(e) => tracing::warn!(error = %e, "recording throughput failed; will retry"),
            }
        }
        if stopping {
            return;
        }
    }
}

/// Runs `consumer` until `shutdown`, recording its throughput in `index` meanwhile, and the
/// last count once it has drained.
pub async fn run_recorded<Q: Queue, H: Handler>(
    consumer: Arc<Consumer<Q, H>>,
    shutdown: Shutdown,
    index: IndexTable,
    stage: &str,
) {
    let (stop, stopped) = crate::shutdown::channel();
    let recorder = tokio::spawn(record(
        index,
        stage.to_owned(),
        consumer.completed(),
        PERIOD,
        stopped,
    ));
    consumer.run(shutdown).await;
    stop.trigger();
    let _ = recorder.await;
}

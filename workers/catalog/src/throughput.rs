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

use imgflow_runtime::{
    config::WorkerConfig,
    consumer::{Consumer, Handler},
    observability,
    ports::Queue,
    shutdown::{self, Shutdown},
};

use crate::{keys::minute_of, ports::ThroughputLog};

/// How often a replica writes its count.
pub const PERIOD: Duration = Duration::from_secs(5);

/// Writes `completed`'s growth under `stage` every `period` until `shutdown`, then once more.
/// A failed write keeps its count for the next period; a crash loses at most one period.
pub async fn write_periodically<L: ThroughputLog>(
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
    let (stop, stopped) = shutdown::channel();
    let recorder = tokio::spawn(write_periodically(
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

/// Runs a built stage until `shutdown`: its probes and metrics served, its throughput
/// recorded in `log`. What every worker's `main` does once it is wired. Refuses to run when
/// its metrics port is taken (see [`observability::serve`]).
pub async fn run_stage<Q: Queue, H: Handler, L: ThroughputLog>(
    consumer: Consumer<Q, H>,
    config: &WorkerConfig,
    log: L,
    shutdown: Shutdown,
) -> Result<(), String> {
    let served = observability::start_for_worker(config, consumer.health()).await?;
    tracing::info!(
        prefix = %config.names.prefix,
        stage = config.stage.as_str(),
        queue = %config.names.queue(config.stage),
        concurrency = config.consumer.concurrency,
        metrics = %served.map_or("off".into(), |a| format!("http://{a}/metrics")),
        "stage running"
    );
    run_recorded(Arc::new(consumer), shutdown, log, config.stage.as_str()).await;
    Ok(())
}

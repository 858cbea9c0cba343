//! The SQS consumer loop every stage runs.
//!
//! - Long-poll receive, handle the batch with bounded concurrency, delete successes in
//!   `DeleteMessageBatch` requests of ten gathered across receives (per-entry failures are
//!   logged: the message comes back and the idempotent handler absorbs the repeat).
//! - Between receives a poller waits for a fuller batch only while messages arrive fast
//!   enough to fill one within `receive_window` ([`pace`]).
//! - Transient failures are retried through the queue: the message's visibility is set to an
//!   exponential backoff with jitter of its receive count, and the RedrivePolicy moves it to
//!   the dead-letter queue after `maxReceiveCount` receives.
//! - Failures that can never succeed (malformed body, unknown schema) are copied to the
//!   dead-letter queue at once with the reason as attributes, then deleted.
//! - Shutdown stops new receives; a batch already received is finished, because abandoning
//!   it would re-run paid detector calls on redelivery. Messages that arrive from the last
//!   long poll after the shutdown request are released (visibility 0) for other workers.
//!
//! [`Consumer::process_batch`] is one iteration, so tests drive the loop without sleeping.
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::future::join_all;
use tokio::sync::Semaphore;
use tracing::{field::Empty, Instrument};

use crate::{
    clock,
    ports::{DeadLetter, Queue, ReceivedMessage},
    shutdown::Shutdown,
    PortError,
};

mod handler;
pub mod pace;
mod run;

pub use handler::{error_chain, Admission, Disposition, HandleError, Handler, NEVER_REPLAYABLE};

/// How the consumer polls and paces.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Stage name for logs and dead-letter attributes.
    pub stage: String,
    /// Messages per receive (SQS allows 1–10).
    pub max_messages: u32,
    /// Long-poll wait (SQS allows 0–20 s).
    pub wait_time: Duration,
    /// Messages handled at once in this process.
    pub concurrency: usize,
    /// First retry delay; doubles per receive up to `retry_max_delay`.
    pub retry_min_delay: Duration,
    /// Longest retry delay (SQS allows up to 12 hours of visibility).
    pub retry_max_delay: Duration,
    /// The queue's visibility timeout; the heartbeat keeps messages in work invisible this
    /// long, renewing every third of it.
    pub visibility_timeout: Duration,
    /// After a shutdown request, how long handlers already running may take before their
    /// messages are released (default 25 s, under ECS's 30 s stop timeout).
    pub drain_deadline: Duration,
    /// After a receive that did not fill a batch, wait up to this long before the next one so
    /// more messages gather (fewer requests per message, more latency); only while messages
    /// arrive fast enough that at least one more is expected within it. 0 polls at once.
    pub receive_window: Duration,
    /// How long a handled message's delete may wait for others to fill a DeleteMessageBatch
    /// (at most a third of the visibility timeout, so it is deleted while still invisible).
    pub delete_delay: Duration,
}

/// The longest delay SQS gives a message sent to a queue (`DelaySeconds`).
pub const MAX_MESSAGE_DELAY: Duration = Duration::from_secs(900);

/// The default longest wait between receives: with three stages on the way to a stored image,
/// the gathering adds at most 3 × 50 ms, and about half that on average.
pub const DEFAULT_RECEIVE_WINDOW: Duration = Duration::from_millis(50);

/// How long a receive waits for messages. A shutdown waits for the receive under way rather
/// than abandon it (a message it took would stay hidden for the visibility timeout), so this
/// bounds how long an idle worker takes to stop; 5 s costs an idle poller 12 receives a minute
/// instead of 3 at SQS' 20 s maximum (about $0.20 a month more per poller).
pub const DEFAULT_WAIT_TIME: Duration = Duration::from_secs(5);

impl ConsumerConfig {
    /// Production defaults for `stage`.
    pub fn new(stage: impl Into<String>) -> Self {
        Self {
            stage: stage.into(),
            max_messages: 10,
            wait_time: DEFAULT_WAIT_TIME,
            concurrency: 10,
            retry_min_delay: Duration::from_secs(2),
            retry_max_delay: Duration::from_secs(300),
            visibility_timeout: Duration::from_secs(60),
            drain_deadline: Duration::from_secs(25),
            receive_window: DEFAULT_RECEIVE_WINDOW,
            delete_delay: Duration::from_secs(1),
        }
    }
}

/// What one iteration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// The long poll returned no message.
    Empty,
    /// Messages were received and dealt with.
    Processed(BatchReport),
}

/// Counts of one batch's outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Messages received.
    pub received: usize,
    /// Handled and deleted.
    pub succeeded: usize,
    /// Left for a later delivery.
    pub retried: usize,
    /// Copied to the dead-letter queue and deleted.
    pub dead_lettered: usize,
    /// Handed back to the queue unfinished because of a shutdown.
    pub released: usize,
}

/// How one message's handling ended.
enum Outcome {
    /// The handler ran to the end.
    Handled(Result<(), HandleError>),
    /// Shutdown came first: the message goes back to the queue untouched.
    Released,
}

/// The outcome of the consumer's latest receive, which `/readyz` reports: ready once a
/// receive has succeeded and for as long as receives keep succeeding. It needs no permission
/// beyond the `sqs:ReceiveMessage` the worker needs anyway, and it fails where the work fails
/// (a missing grant, an unreachable or deleted queue) rather than where a separate probe would.
#[derive(Debug, Default)]
pub struct ReceiveHealth {
    latest: std::sync::Mutex<Option<Result<(), String>>>,
}

impl ReceiveHealth {
    fn record<T>(&self, result: &Result<T, PortError>) {
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
    }

    /// `Ok` when the latest receive succeeded; otherwise why the worker is not ready.
    pub fn status(&self) -> Result<(), String> {
        match &*self.latest.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(outcome) => outcome.clone(),
            None => Err("no receive has completed yet".into()),
        }
    }
}

/// Consumes one queue with one handler.
pub struct Consumer<Q, H> {
    queue: Arc<Q>,
    handler: Arc<H>,
    config: ConsumerConfig,
    permits: Arc<Semaphore>,
    completed: Arc<AtomicU64>,
    health: Arc<ReceiveHealth>,
}

impl<Q, H> std::fmt::Debug for Consumer<Q, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("config", &self.config)
            .finish()
    }
}

impl<Q: Queue, H: Handler> Consumer<Q, H> {
    /// A consumer of `queue` running `handler`.
    pub fn new(queue: Arc<Q>, handler: Arc<H>, config: ConsumerConfig) -> Self {
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Self {
            queue,
            handler,
            config,
            permits,
            completed: Arc::default(),
            health: Arc::default(),
        }
    }

    /// The latest receive's outcome, for `/readyz`.
    pub fn health(&self) -> Arc<ReceiveHealth> {
        self.health.clone()
    }

    /// Messages handled successfully so far (for [`crate::throughput`]).
    pub fn completed(&self) -> Arc<AtomicU64> {
        self.completed.clone()
    }

    /// One iteration: receive a batch and deal with every message in it.
    pub async fn process_batch(&self) -> Result<Batch, PortError> {
        let messages = self.receive().await?;
        Ok(self.process(messages, &Shutdown::never(), None).await)
    }

    /// Messages per receive: the configured number, within SQS' 1–10.
    fn batch_size(&self) -> u32 {
        self.config.max_messages.clamp(1, 10)
    }

    async fn receive(&self) -> Result<Vec<ReceivedMessage>, PortError> {
        let received = self
            .queue
            .receive(self.batch_size(), self.config.wait_time)
            .await;
        self.health.record(&received);
        received
    }

    /// Handles `messages`; deletes the handled ones through `deletes` when given (gathered
    /// across receives), else at once.
    async fn process(
        &self,
        messages: Vec<ReceivedMessage>,
        shutdown: &Shutdown,
        deletes: Option<&pace::DeleteSender>,
    ) -> Batch {
        if messages.is_empty() {
            return Batch::Empty;
        }
        let mut report = BatchReport {
            received: messages.len(),
            ..BatchReport::default()
        };
        let stage = self.config.stage.clone();
        metrics::counter!("imgflow_messages_received_total", "stage" => stage.clone())
            .increment(messages.len() as u64);
        // Every message of the batch stays under the heartbeat until the batch is settled:
        // one finished early waits for its (single) delete call with the others, and must not
        // become visible meanwhile because a slow neighbour outlived the visibility timeout.
        let batch: Vec<String> = messages.iter().map(|m| m.receipt_handle.clone()).collect();
        let work = join_all(
            messages
                .iter()
                .map(|m| self.handle_one(m, shutdown.clone())),
        );
        let outcomes = tokio::select! {
            outcomes = work => outcomes,
            never = self.heartbeat(&batch) => match never {},
        };

        let mut to_delete = Vec::with_capacity(messages.len());
        let mut to_release = Vec::new();
        for (message, outcome) in messages.iter().zip(outcomes) {
            match outcome {
                Outcome::Handled(Ok(())) => {
                    report.succeeded += 1;
                    to_delete.push(message.receipt_handle.clone());
                }
                Outcome::Handled(Err(e)) if e.disposition == Disposition::DeadLetter => {
                    if self.dead_letter(message, &e).await {
                        report.dead_lettered += 1;
                        to_delete.push(message.receipt_handle.clone());
                    } else {
                        report.retried += 1;
                    }
                }
                Outcome::Handled(Err(e)) if e.disposition == Disposition::Requeue => {
                    report.retried += 1;
                    if self.requeue(message, &e).await {
                        to_delete.push(message.receipt_handle.clone());
                    }
                }
                Outcome::Handled(Err(e)) => {
                    report.retried += 1;
                    self.back_off(message, e.retry_after).await;
                }
                Outcome::Released => {
                    report.released += 1;
                    to_release.push(message.receipt_handle.clone());
                }
            }
        }
        match deletes {
            Some(later) => {
                for handle in to_delete {
                    if let Err(unsent) = later.send(handle) {
                        self.delete(vec![unsent.0]).await;
                    }
                }
            }
            None => self.delete(to_delete).await,
        }
        self.release(to_release).await;
        self.completed
            .fetch_add(report.succeeded as u64, Ordering::Relaxed);
        for (name, count) in [
            ("imgflow_messages_succeeded_total", report.succeeded),
            ("imgflow_messages_retried_total", report.retried),
            ("imgflow_messages_released_total", report.released),
        ] {
            metrics::counter!(name, "stage" => stage.clone()).increment(count as u64);
        }
        Batch::Processed(report)
    }

    /// Keeps a batch's messages invisible, renewing before their timeout ends, so work slower
    /// than the visibility timeout is not handed to a second worker. Never ends.
    async fn heartbeat(&self, batch: &[String]) -> std::convert::Infallible {
        let timeout = self.config.visibility_timeout.max(Duration::from_secs(3));
        let interval = timeout / 3;
        loop {
            tokio::time::sleep(interval).await;
            match self.queue.extend_visibility(batch.to_vec(), timeout).await {
                Ok(failed) if failed.is_empty() => {}
                Ok(failed) => tracing::warn!(
                    failed = failed.len(),
                    "heartbeat could not extend some messages"
                ),
                Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying at the next beat"),
            }
        }
    }

    async fn handle_one(&self, message: &ReceivedMessage, mut shutdown: Shutdown) -> Outcome {
        let span = tracing::info_span!(
            "message",
            stage = %self.config.stage,
            message_id = %message.message_id,
            receive_count = message.receive_count,
            image_id = Empty,
            trace_id = Empty,
            key = Empty,
        );
        async {
            // Work not started when shutdown comes is handed back at once.
            let _permit = tokio::select! {
                biased;
                permit = self.permits.acquire() => permit.expect("semaphore is never closed"),
                _ = shutdown.requested() => return Outcome::Released,
            };
            let drain_deadline = self.config.drain_deadline;
            let deadline = async move {
                shutdown.requested().await;
                tokio::time::sleep(drain_deadline).await;
            };
            let stage = self.config.stage.clone();
            let in_flight = metrics::gauge!("imgflow_in_flight", "stage" => stage.clone());
            in_flight.increment(1.0);
            let started = std::time::Instant::now();
            let result = tokio::select! {
                result = self.handler.handle(message) => result,
                _ = deadline => {
                    in_flight.decrement(1.0);
                    tracing::warn!(deadline = ?drain_deadline, "drain deadline passed; releasing the message");
                    return Outcome::Released;
                }
            };
            in_flight.decrement(1.0);
            metrics::histogram!("imgflow_handler_duration_seconds", "stage" => stage)
                .record(started.elapsed().as_secs_f64());
            match &result {
                Ok(()) => tracing::debug!("message handled"),
                // A wait for something held elsewhere (a duplicate while another copy works):
                // the design working, not a failure.
                Err(e) if e.retry_after.is_some() => tracing::info!(
                    error_code = e.error_class,
                    recheck_in = ?e.retry_after.unwrap_or_default(),
                    "waiting: {}; the message comes back then",
                    e.source
                ),
                Err(e) => tracing::warn!(
                    error_code = e.error_class,
                    disposition = ?e.disposition,
                    error = %e,
                    error.chain = %error_chain(e),
                    "message failed"
                ),
            }
            Outcome::Handled(result)
        }
        .instrument(span)
        .await
    }

    /// Copies a message that can never succeed to the dead-letter queue. Returns whether it
    /// may now be deleted; when the copy fails the message stays and redrive is the backstop.
    async fn dead_letter(&self, message: &ReceivedMessage, error: &HandleError) -> bool {
        let why = DeadLetter {
            stage: self.config.stage.clone(),
            error_class: error.error_class.to_owned(),
            error: error_chain(error),
            failed_at: clock::now_rfc3339(),
            receive_count: message.receive_count,
        };
        match self.queue.dead_letter(message, &why).await {
            Ok(()) => {
                metrics::counter!(
                    "imgflow_messages_dead_lettered_total",
                    "stage" => self.config.stage.clone(),
                    "error_class" => error.error_class
                )
                .increment(1);
                tracing::warn!(
                    message_id = %message.message_id,
                    error_code = error.error_class,
                    "message dead-lettered"
                );
                true
            }
            Err(e) => {
                tracing::error!(
                    message_id = %message.message_id,
                    error = %e,
                    "dead-letter send failed; leaving the message for redrive"
                );
                false
            }
        }
    }

    /// Sends a waiting message again as a new one, delayed (SQS allows 15 minutes); whether
    /// the original may now be deleted. When the send fails it backs off as a retry instead.
    async fn requeue(&self, message: &ReceivedMessage, error: &HandleError) -> bool {
        let delay = error.retry_after.unwrap_or_default().min(MAX_MESSAGE_DELAY);
        match self.queue.requeue(message, delay).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not send the waiting message again; it comes back after its backoff");
                self.back_off(message, Some(delay)).await;
                false
            }
        }
    }

    /// Delays the next delivery of a failed message by `after`, or else by an exponential
    /// backoff of its receive count, so a struggling dependency is not hammered by immediate
    /// redeliveries.
    async fn back_off(&self, message: &ReceivedMessage, after: Option<Duration>) {
        // SQS allows a visibility timeout of at most 12 hours.
        let delay = after.map_or_else(
            || retry_delay(&self.config, message.receive_count),
            |d| d.min(Duration::from_secs(12 * 3600)),
        );
        if let Err(e) = self
            .queue
            .change_visibility(&message.receipt_handle, delay)
            .await
        {
            // The message still comes back when its current visibility timeout ends.
            tracing::warn!(message_id = %message.message_id, error = %e, "could not set retry backoff");
        }
    }

    async fn delete(&self, receipt_handles: Vec<String>) {
        if receipt_handles.is_empty() {
            return;
        }
        match self.queue.delete_batch(receipt_handles).await {
            Ok(failed) if failed.is_empty() => {}
            Ok(failed) => tracing::warn!(
                failed = failed.len(),
                "some deletes failed; those messages will be redelivered and handled idempotently"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "batch delete failed; the messages will be redelivered and handled idempotently"
            ),
        }
    }
}

/// Backoff before attempt `attempt + 1` (1-based): exponential from `retry_min_delay`, capped,
/// with jitter so retries of one burst do not return in lockstep.
pub fn retry_delay(config: &ConsumerConfig, attempt: u32) -> Duration {
    ExponentialBuilder::new()
        .with_min_delay(config.retry_min_delay)
        .with_max_delay(config.retry_max_delay)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(config.retry_max_delay)
        .min(config.retry_max_delay)
}

//! The consumer's long-running side: pollers that receive and hand batches over until
//! shutdown, one task deleting in batches, and what a stop waits for.
use std::{sync::Arc, time::Duration};

use futures::future::join_all;

use super::{pace, retry_delay, Admission, Consumer, Handler};
use crate::{ports::Queue, shutdown::Shutdown};

impl<Q: Queue, H: Handler> Consumer<Q, H> {
    /// Runs until `shutdown`, with enough pollers to keep `concurrency` handlers busy.
    /// Returns once every received message has reached a safe state.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let pollers = self
            .config
            .concurrency
            .div_ceil(self.config.max_messages.max(1) as usize);
        let (deletes, handles) = tokio::sync::mpsc::unbounded_channel();
        let delay = self
            .config
            .delete_delay
            .min(self.config.visibility_timeout / 3);
        let deleter = {
            let consumer = Arc::clone(&self);
            tokio::spawn(async move {
                pace::delete_in_batches(handles, delay, |batch| {
                    let consumer = Arc::clone(&consumer);
                    async move { consumer.delete(batch).await }
                })
                .await;
            })
        };
        let tasks: Vec<_> = (0..pollers.max(1))
            .map(|_| tokio::spawn(Arc::clone(&self).poll(shutdown.clone(), deletes.clone())))
            .collect();
        let announcer = tokio::spawn(Arc::clone(&self).announce_shutdown(shutdown.clone()));
        drop(deletes);
        for task in join_all(tasks).await {
            if let Err(e) = task {
                tracing::error!(error = %e, "poller task failed");
            }
        }
        // The pollers' senders are gone: the deleter sends what it holds and ends.
        if let Err(e) = deleter.await {
            tracing::error!(error = %e, "delete task failed");
        }
        announcer.abort();
        tracing::info!(stage = %self.config.stage, "consumer stopped");
    }

    /// Says, when shutdown comes, what the process waits for and for how long at most.
    async fn announce_shutdown(self: Arc<Self>, mut shutdown: Shutdown) {
        shutdown.requested().await;
        let in_flight = self.config.concurrency.max(1) - self.permits.available_permits();
        tracing::info!(
            stage = %self.config.stage,
            in_flight,
            receive_wait_secs = self.config.wait_time.as_secs(),
            drain_deadline_secs = self.config.drain_deadline.as_secs(),
            "stopping: no new receives; waiting for the current receive to return (at most \
             receive_wait_secs; abandoned, a message it took would stay hidden for the \
             visibility timeout) and for the messages in flight (at most drain_deadline_secs)"
        );
    }

    async fn poll(self: Arc<Self>, mut shutdown: Shutdown, deletes: pace::DeleteSender) {
        let mut failures: u32 = 0;
        let mut arrivals = pace::ArrivalRate::default();
        let max = self.batch_size() as usize;
        let mut paused = false;
        while !shutdown.is_requested() {
            match self.handler.admission().await {
                Admission::Open if paused => {
                    paused = false;
                    tracing::info!(stage = %self.config.stage, "receiving again");
                }
                Admission::Open => {}
                Admission::Paused { for_, why } => {
                    if !paused {
                        tracing::info!(stage = %self.config.stage, resume_in = ?for_, "not receiving: {why}; messages wait in the queue");
                    }
                    paused = true;
                    tokio::select! {
                        _ = shutdown.requested() => return,
                        _ = tokio::time::sleep(for_) => {}
                    }
                    continue;
                }
            }
            // The long poll is not cancelled on shutdown: a receive abandoned client-side may
            // still have taken messages server-side, which would then stay invisible for the
            // whole visibility timeout. It ends within `wait_time` (5 s by default, so that an
            // idle worker stops within that); what it brings after the
            // shutdown request is released at once.
            match self.receive().await {
                Ok(messages) if shutdown.is_requested() => {
                    self.release(messages.into_iter().map(|m| m.receipt_handle).collect())
                        .await;
                }
                Ok(messages) => {
                    failures = 0;
                    let received_at = tokio::time::Instant::now();
                    let received = messages.len();
                    arrivals.observe(received, received_at);
                    self.process(messages, &shutdown, Some(&deletes)).await;
                    let wait = arrivals.gather_wait(
                        received,
                        max,
                        self.config.receive_window,
                        received_at.elapsed(),
                    );
                    if !wait.is_zero() {
                        tokio::select! {
                            _ = shutdown.requested() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = retry_delay(&self.config, failures).min(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in = ?delay, "receive failed");
                    tokio::select! {
                        _ = shutdown.requested() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Makes messages visible again at once, for another worker to take.
    pub(super) async fn release(&self, receipt_handles: Vec<String>) {
        if receipt_handles.is_empty() {
            return;
        }
        let count = receipt_handles.len();
        match self
            .queue
            .extend_visibility(receipt_handles, Duration::ZERO)
            .await
        {
            Ok(failed) if failed.is_empty() => {
                tracing::info!(released = count, "messages released")
            }
            Ok(failed) => tracing::warn!(
                failed = failed.len(),
                "some messages could not be released; they return after their timeout"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "release failed; the messages return after their timeout")
            }
        }
    }
}

//! The queues a stage consumes and the topics it publishes to.
use std::{collections::HashMap, future::Future, time::Duration};

use crate::PortError;

/// One message received from a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    /// SQS message id.
    pub message_id: String,
    /// Handle for delete and visibility calls on this receipt.
    pub receipt_handle: String,
    /// The body as sent.
    pub body: String,
    /// How many times SQS has delivered it, this time included.
    pub receive_count: u32,
    /// String message attributes.
    pub attributes: HashMap<String, String>,
}

/// Why a message went to the dead-letter queue, as String message attributes (moto fails
/// raw-delivery receives when Binary attributes are present, and Strings read well in consoles).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Stage that gave up (`ingest`, `label`, `store`).
    pub stage: String,
    /// Stable error class, for example `malformed_message`.
    pub error_class: String,
    /// Human-readable error with its cause chain.
    pub error: String,
    /// RFC 3339 time of the decision.
    pub failed_at: String,
    /// Receive count when it was given up.
    pub receive_count: u32,
}

impl DeadLetter {
    /// The message attributes written to the dead-letter copy.
    pub fn attributes(&self) -> [(&'static str, String); 5] {
        [
            ("imgflow.stage", self.stage.clone()),
            ("imgflow.error_class", self.error_class.clone()),
            // SQS caps an attribute value at 256 KiB with the body; errors are far shorter,
            // but a runaway cause chain must not make the dead-letter send itself fail.
            ("imgflow.error", truncate(&self.error, 4096)),
            ("imgflow.failed_at", self.failed_at.clone()),
            ("imgflow.receive_count", self.receive_count.to_string()),
        ]
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A stage's source queue and its dead-letter queue.
pub trait Queue: Send + Sync + 'static {
    /// Long-polls for up to `max` messages, waiting at most `wait`.
    fn receive(
        &self,
        max: u32,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<ReceivedMessage>, PortError>> + Send;

    /// Deletes messages in one call; returns the receipt handles that failed.
    fn delete_batch(
        &self,
        receipt_handles: Vec<String>,
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;

    /// Makes a received message visible again after `timeout`.
    fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Sets the visibility of several received messages at once (the heartbeat that keeps
    /// slow work invisible); returns the receipt handles that failed.
    fn extend_visibility(
        &self,
        receipt_handles: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;

    /// Sends `message` again to this queue as a new message (a fresh receive count), visible
    /// after `delay` (at most 15 minutes). The caller then deletes the original.
    fn requeue(
        &self,
        message: &ReceivedMessage,
        delay: Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Sends a copy of `message` to the dead-letter queue with `why` as attributes.
    /// The caller deletes the original only after this succeeded.
    fn dead_letter(
        &self,
        message: &ReceivedMessage,
        why: &DeadLetter,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Publishes a stage's events to its SNS topic.
pub trait Publisher: Send + Sync + 'static {
    /// Publishes one message body.
    fn publish(&self, body: String) -> impl Future<Output = Result<(), PortError>> + Send;
}

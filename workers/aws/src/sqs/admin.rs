//! Operators' access to a queue (a dead-letter queue, mostly): read without consuming, move,
//! purge.
use std::{collections::HashMap, time::Duration};

use aws_sdk_sqs::{
    types::{MessageSystemAttributeName, SendMessageBatchRequestEntry},
    Client,
};
use imgflow_runtime::{PortError, PortErrorKind};

use super::{change_visibility_batch, queue_depth, sqs_error, string_attribute, whole_seconds};

/// A message read from a dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// SQS message id.
    pub message_id: String,
    /// Handle for this read.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// String message attributes.
    pub attributes: HashMap<String, String>,
    /// When it was first sent to its current queue (ms since the epoch).
    pub sent_at_ms: Option<i64>,
}

/// Operators' access to one queue (a dead-letter queue, mostly): read without consuming,
/// move, purge.
#[derive(Debug, Clone)]
pub struct QueueAdmin {
    client: Client,
    /// The queue's URL.
    pub url: String,
}

impl QueueAdmin {
    /// Access to the queue at `url`.
    pub fn new(client: Client, url: String) -> Self {
        Self { client, url }
    }

    /// Messages visible now (SQS' approximate count).
    pub async fn depth(&self) -> Result<u64, PortError> {
        Ok(queue_depth(&self.client, &self.url).await?.visible)
    }

    /// Receives up to `max` distinct messages, hiding each for `hold` so one pass sees each
    /// once. The caller releases or deletes them.
    pub async fn take(&self, max: usize, hold: Duration) -> Result<Vec<StoredMessage>, PortError> {
        let mut out: Vec<StoredMessage> = Vec::new();
        while out.len() < max {
            let want = (max - out.len()).min(10) as i32;
            let output = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(want)
                .visibility_timeout(whole_seconds(hold))
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await
                .map_err(|e| sqs_error("sqs:ReceiveMessage", e))?;
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let sent_at_ms = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|v| v.parse().ok());
                let message = StoredMessage {
                    message_id: m.message_id.unwrap_or_default(),
                    receipt_handle: m.receipt_handle.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    attributes: m
                        .message_attributes
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(k, v)| v.string_value.map(|v| (k, v)))
                        .collect(),
                    sent_at_ms,
                };
                if !out.iter().any(|o| o.message_id == message.message_id) {
                    out.push(message);
                }
            }
        }
        Ok(out)
    }

    /// Makes messages visible again at once.
    pub async fn release(&self, messages: &[StoredMessage]) -> Result<(), PortError> {
        let handles: Vec<String> = messages.iter().map(|m| m.receipt_handle.clone()).collect();
        change_visibility_batch(&self.client, &self.url, &handles, Duration::ZERO).await?;
        Ok(())
    }

    /// Deletes one message.
    pub async fn delete(&self, message: &StoredMessage) -> Result<(), PortError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&message.receipt_handle)
            .send()
            .await
            .map_err(|e| sqs_error("sqs:DeleteMessage", e))?;
        Ok(())
    }

    /// Sends a body with String attributes to `queue_url`.
    pub async fn send(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &HashMap<String, String>,
    ) -> Result<(), PortError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(body);
        for (name, value) in attributes {
            request = request.message_attributes(name, string_attribute(value));
        }
        request
            .send()
            .await
            .map_err(|e| sqs_error("sqs:SendMessage", e))?;
        Ok(())
    }

    /// Sends `bodies` (at most 10) to `queue_url` in one SendMessageBatch, sending the
    /// entries SQS failed again a few times before giving up.
    pub async fn send_batch(&self, queue_url: &str, bodies: &[String]) -> Result<(), PortError> {
        let mut pending: Vec<(String, &String)> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| (i.to_string(), body))
            .collect();
        for attempt in 0..4u32 {
            if pending.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body.as_str())
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let output = self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_error("sqs:SendMessageBatch", e))?;
            let failed: Vec<String> = output.failed.iter().map(|f| f.id.clone()).collect();
            pending.retain(|(id, _)| failed.contains(id));
        }
        if pending.is_empty() {
            return Ok(());
        }
        Err(PortError::new(
            PortErrorKind::Retryable,
            "sqs:SendMessageBatch",
            format!("{} messages still failing after retries", pending.len()),
        ))
    }

    /// Deletes every message in the queue.
    pub async fn purge(&self) -> Result<(), PortError> {
        self.client
            .purge_queue()
            .queue_url(&self.url)
            .send()
            .await
            .map_err(|e| sqs_error("sqs:PurgeQueue", e))?;
        Ok(())
    }
}

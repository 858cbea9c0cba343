//! The `Queue` port on SQS.
use std::{collections::HashMap, time::Duration};

use aws_sdk_sqs::{
    types::{DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName},
    Client,
};

use super::port_error;
use crate::{
    ports::{DeadLetter, Queue, ReceivedMessage},
    PortError, PortErrorKind,
};

/// A source queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dead_letter_queue_url: String,
}

impl SqsQueue {
    /// A queue pair by URL.
    pub fn new(client: Client, queue_url: String, dead_letter_queue_url: String) -> Self {
        Self {
            client,
            queue_url,
            dead_letter_queue_url,
        }
    }

    /// The source queue's URL.
    pub fn url(&self) -> &str {
        &self.queue_url
    }
}

/// Looks a queue's URL up by name.
pub async fn queue_url(client: &Client, name: &str) -> Result<String, PortError> {
    let operation = format!("sqs:GetQueueUrl {name}");
    let output = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| port_error(operation.clone(), e))?;
    output.queue_url.ok_or_else(|| {
        PortError::new(
            PortErrorKind::NotFound,
            operation,
            "no QueueUrl in response",
        )
    })
}

fn whole_seconds(duration: Duration) -> i32 {
    // SQS takes whole seconds, at most 12 hours; round up so a backoff is never shortened.
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.min(43_200) as i32
}

impl Queue for SqsQueue {
    async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<ReceivedMessage>, PortError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(whole_seconds(wait).min(20))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| port_error("sqs:ReceiveMessage", e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                let attributes = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(name, value)| value.string_value.map(|v| (name, v)))
                    .collect::<HashMap<_, _>>();
                ReceivedMessage {
                    message_id: m.message_id.unwrap_or_default(),
                    receipt_handle: m.receipt_handle.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    receive_count,
                    attributes,
                }
            })
            .collect())
    }

    async fn delete_batch(&self, receipt_handles: Vec<String>) -> Result<Vec<String>, PortError> {
        let mut failed = Vec::new();
        for chunk in receipt_handles.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| port_error("sqs:DeleteMessageBatch", e))?;
            for entry in output.failed {
                tracing::warn!(code = %entry.code, message = ?entry.message, "delete entry failed");
                if let Some(handle) = entry.id.parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                    failed.push(handle.clone());
                }
            }
        }
        Ok(failed)
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), PortError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(whole_seconds(timeout))
            .send()
            .await
            .map_err(|e| port_error("sqs:ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        why: &DeadLetter,
    ) -> Result<(), PortError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dead_letter_queue_url)
            .message_body(&message.body);
        // Keep the original's attributes (a replay counter among them), then add the reason.
        let original = message
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()));
        let reason = why.attributes().into_iter();
        for (name, value) in original.chain(reason) {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("data type is set");
            request = request.message_attributes(name, value);
        }
        request
            .send()
            .await
            .map_err(|e| port_error("sqs:SendMessage (dead-letter queue)", e))?;
        Ok(())
    }
}

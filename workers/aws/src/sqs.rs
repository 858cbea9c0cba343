//! The `Queue` port on SQS; operators' queue access in [`admin`].
use std::{collections::HashMap, time::Duration};

use aws_sdk_sqs::{
    types::{
        ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
        MessageAttributeValue, MessageSystemAttributeName,
    },
    Client,
};

use super::ModeledKind;

mod admin;
pub use admin::{QueueAdmin, StoredMessage};
use imgflow_runtime::{
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
}

/// Sets the visibility of many received messages, ten per request; returns the receipt
/// handles that failed.
async fn change_visibility_batch(
    client: &Client,
    queue_url: &str,
    receipt_handles: &[String],
    timeout: Duration,
) -> Result<Vec<String>, PortError> {
    let mut failed = Vec::new();
    for chunk in receipt_handles.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(whole_seconds(timeout))
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        let output = client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sqs_error("sqs:ChangeMessageVisibilityBatch", e))?;
        failed.extend(failed_handles(
            chunk,
            output.failed.iter().map(|e| (&e.id, &e.code)),
            "visibility entry failed",
        ));
    }
    Ok(failed)
}

/// A queue's approximate message counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Messages waiting to be received now.
    pub visible: u64,
    /// Messages sent with a delay, not yet visible: those sent back to wait (for a budget
    /// window, for an original being labelled).
    pub delayed: u64,
    /// Messages received and not yet deleted (or their visibility timeout not yet over).
    pub in_flight: u64,
}

/// Reads a queue's depth: one `GetQueueAttributes` for both counts.
pub async fn queue_depth(client: &Client, url: &str) -> Result<QueueDepth, PortError> {
    use aws_sdk_sqs::types::QueueAttributeName::{
        ApproximateNumberOfMessages, ApproximateNumberOfMessagesDelayed,
        ApproximateNumberOfMessagesNotVisible,
    };
    let name = url.rsplit('/').next().unwrap_or(url);
    let output = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(ApproximateNumberOfMessages)
        .attribute_names(ApproximateNumberOfMessagesNotVisible)
        .attribute_names(ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| sqs_error(format!("sqs:GetQueueAttributes {name}"), e))?;
    let attributes = output.attributes.unwrap_or_default();
    let count = |attribute| {
        attributes
            .get(&attribute)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(QueueDepth {
        visible: count(ApproximateNumberOfMessages),
        delayed: count(ApproximateNumberOfMessagesDelayed),
        in_flight: count(ApproximateNumberOfMessagesNotVisible),
    })
}

/// A String message attribute (the only kind imgflow sends: Binary ones break raw delivery on
/// the emulator).
fn string_attribute(value: impl Into<String>) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

/// Looks a queue's URL up by name.
pub async fn queue_url(client: &Client, name: &str) -> Result<String, PortError> {
    let operation = format!("sqs:GetQueueUrl {name}");
    let output = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| sqs_error(operation.clone(), e))?;
    output.queue_url.ok_or_else(|| {
        PortError::new(
            PortErrorKind::NotFound,
            operation,
            "no QueueUrl in response",
        )
    })
}

/// Receipt handles of a batch call's failed entries (entry ids are indexes into `chunk`).
fn failed_handles<'a>(
    chunk: &[String],
    failed: impl Iterator<Item = (&'a String, &'a String)>,
    what: &str,
) -> Vec<String> {
    failed
        .filter_map(|(id, code)| {
            tracing::warn!(%code, "{what}");
            id.parse::<usize>().ok().and_then(|i| chunk.get(i)).cloned()
        })
        .collect()
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
            .map_err(|e| sqs_error("sqs:ReceiveMessage", e))?;
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
                .map_err(|e| sqs_error("sqs:DeleteMessageBatch", e))?;
            failed.extend(failed_handles(
                chunk,
                output.failed.iter().map(|e| (&e.id, &e.code)),
                "delete entry failed",
            ));
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
            .map_err(|e| sqs_error("sqs:ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn extend_visibility(
        &self,
        receipt_handles: Vec<String>,
        timeout: Duration,
    ) -> Result<Vec<String>, PortError> {
        change_visibility_batch(&self.client, &self.queue_url, &receipt_handles, timeout).await
    }

    async fn requeue(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), PortError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&message.body)
            .delay_seconds(delay.as_secs().min(900) as i32);
        for (name, value) in &message.attributes {
            request = request.message_attributes(name, string_attribute(value.clone()));
        }
        request
            .send()
            .await
            .map_err(|e| sqs_error("sqs:SendMessage (the stage's own queue)", e))?;
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
            request = request.message_attributes(name, string_attribute(value));
        }
        request
            .send()
            .await
            .map_err(|e| sqs_error("sqs:SendMessage (dead-letter queue)", e))?;
        Ok(())
    }
}

/// SQS' modeled errors.
impl ModeledKind for aws_sdk_sqs::Error {
    fn modeled_kind(&self) -> Option<PortErrorKind> {
        use aws_sdk_sqs::Error as E;
        Some(match self {
            E::QueueDoesNotExist(_) | E::ResourceNotFoundException(_) => PortErrorKind::NotFound,
            E::RequestThrottled(_) | E::KmsThrottled(_) | E::OverLimit(_) => {
                PortErrorKind::Throttled
            }
            _ => return None,
        })
    }
}

service_error_fn!(sqs_error, aws_sdk_sqs);

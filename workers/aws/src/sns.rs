//! The `Publisher` port on SNS: publishes grouped into PublishBatch requests.
//!
//! Each stage publishes one event per image, and PublishBatch sends up to ten in one request.
//! Publishes arriving within a short window (the handlers of one received batch finish close
//! together) share a request; each caller still waits for its own result, so a message is
//! deleted only after its event is out.
use std::time::Duration;

use aws_sdk_sns::{types::PublishBatchRequestEntry, Client};
use tokio::sync::{mpsc, oneshot};

use super::ModeledKind;
use imgflow_runtime::{ports::Publisher, PortError, PortErrorKind};

type Pending = (String, oneshot::Sender<Result<(), PortError>>);

/// A publisher that groups publishes into PublishBatch requests.
#[derive(Debug, Clone)]
pub struct BatchingPublisher {
    sender: mpsc::Sender<Pending>,
}

impl BatchingPublisher {
    /// Publishes to `topic_arn`, waiting at most `window` for more messages to share a request.
    pub fn new(client: Client, topic_arn: String, window: Duration) -> Self {
        let (sender, receiver) = mpsc::channel(1024);
        tokio::spawn(run(client, topic_arn, window, receiver));
        Self { sender }
    }
}

impl Publisher for BatchingPublisher {
    async fn publish(&self, body: String) -> Result<(), PortError> {
        let (done, result) = oneshot::channel();
        let gone = || {
            PortError::new(
                PortErrorKind::Retryable,
                "sns:PublishBatch",
                "publisher stopped",
            )
        };
        self.sender.send((body, done)).await.map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

/// SNS' limit on one message, and on the sum of a PublishBatch's messages.
/// <https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html>
const MAX_BATCH_BYTES: usize = 256 * 1024;

async fn run(
    client: Client,
    topic_arn: String,
    window: Duration,
    mut receiver: mpsc::Receiver<Pending>,
) {
    let mut carry = None;
    while let Some(batch) = next_batch(&mut receiver, &mut carry, window).await {
        send(&client, &topic_arn, batch).await;
    }
}

/// The next request's messages: up to ten arriving within `window` of the first, together
/// within [`MAX_BATCH_BYTES`]. A message that would overflow the batch waits in `carry` to
/// open the next one; one too large on its own is failed here (it can never be published).
async fn next_batch(
    receiver: &mut mpsc::Receiver<Pending>,
    carry: &mut Option<Pending>,
    window: Duration,
) -> Option<Vec<Pending>> {
    let first = loop {
        let next = match carry.take() {
            Some(p) => p,
            None => receiver.recv().await?,
        };
        if next.0.len() <= MAX_BATCH_BYTES {
            break next;
        }
        let _ = next.1.send(Err(PortError::new(
            PortErrorKind::Fatal,
            "sns:PublishBatch",
            format!(
                "message of {} bytes is over SNS' limit of {MAX_BATCH_BYTES}",
                next.0.len()
            ),
        )));
    };
    let mut bytes = first.0.len();
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + window;
    while batch.len() < 10 {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(next)) if bytes + next.0.len() > MAX_BATCH_BYTES => {
                *carry = Some(next);
                break;
            }
            Ok(Some(next)) => {
                bytes += next.0.len();
                batch.push(next);
            }
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

async fn send(client: &Client, topic_arn: &str, batch: Vec<Pending>) {
    let entries = batch
        .iter()
        .enumerate()
        .map(|(i, (body, _))| {
            PublishBatchRequestEntry::builder()
                .id(i.to_string())
                .message(body)
                .build()
                .expect("id and message are set")
        })
        .collect();
    let operation = format!("sns:PublishBatch {topic_arn}");
    match client
        .publish_batch()
        .topic_arn(topic_arn)
        .set_publish_batch_request_entries(Some(entries))
        .send()
        .await
    {
        Ok(output) => {
            let failed: Vec<(usize, String)> = output
                .failed
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| Some((f.id.parse().ok()?, f.code)))
                .collect();
            for (i, (_, done)) in batch.into_iter().enumerate() {
                let result = match failed.iter().find(|(index, _)| *index == i) {
                    Some((_, code)) => Err(PortError::new(
                        PortErrorKind::Retryable,
                        operation.clone(),
                        code.clone(),
                    )),
                    None => Ok(()),
                };
                let _ = done.send(result);
            }
        }
        Err(e) => {
            let error = sns_error(operation, e);
            for (_, done) in batch {
                let _ = done.send(Err(PortError::new(
                    error.kind,
                    error.operation.clone(),
                    error.message.clone(),
                )));
            }
        }
    }
}

/// Finds a topic's ARN by name. SNS has no lookup by name; listing needs only
/// `sns:ListTopics` where `CreateTopic` would need the right to create.
pub async fn topic_arn(client: &Client, name: &str) -> Result<String, PortError> {
    let suffix = format!(":{name}");
    let mut next_token = None;
    loop {
        let page = client
            .list_topics()
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| sns_error("sns:ListTopics", e))?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.ends_with(&suffix))
        {
            return Ok(arn.to_owned());
        }
        match page.next_token {
            Some(token) => next_token = Some(token),
            None => {
                return Err(PortError::new(
                    PortErrorKind::NotFound,
                    format!("sns:ListTopics {name}"),
                    "no such topic; run `imgflow provision` or set IMGFLOW_TOPIC_ARN",
                ))
            }
        }
    }
}

/// SNS' modeled errors.
impl ModeledKind for aws_sdk_sns::Error {
    fn modeled_kind(&self) -> Option<PortErrorKind> {
        use aws_sdk_sns::Error as E;
        Some(match self {
            E::NotFoundException(_) | E::ResourceNotFoundException(_) => PortErrorKind::NotFound,
            E::ThrottledException(_) | E::KmsThrottlingException(_) => PortErrorKind::Throttled,
            E::InternalErrorException(_) => PortErrorKind::Retryable,
            _ => return None,
        })
    }
}

service_error_fn!(sns_error, aws_sdk_sns);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_stay_within_the_request_size_limit() {
        let (sender, mut receiver) = mpsc::channel(64);
        let mut results = Vec::new();
        for size in [40 * 1024; 10].into_iter().chain([300 * 1024, 10]) {
            let (done, result) = oneshot::channel();
            sender.send(("x".repeat(size), done)).await.unwrap();
            results.push(result);
        }
        drop(sender);
        let mut carry = None;
        let mut sizes = Vec::new();
        while let Some(batch) = next_batch(&mut receiver, &mut carry, Duration::ZERO).await {
            assert!(batch.iter().map(|(b, _)| b.len()).sum::<usize>() <= MAX_BATCH_BYTES);
            sizes.push(batch.len());
        }
        assert_eq!(
            sizes,
            vec![6, 4, 1],
            "10 × 40 KB in two requests; the 10-byte one alone"
        );
        let too_large = results.remove(10).await.unwrap().unwrap_err();
        assert_eq!(too_large.kind, PortErrorKind::Fatal);
        assert!(too_large.message.contains("over SNS' limit"));
    }
}

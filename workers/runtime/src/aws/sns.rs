//! The `Publisher` port on SNS: publishes grouped into PublishBatch requests.
//!
//! Each stage publishes one event per image, and PublishBatch sends up to ten in one request.
//! Publishes arriving within a short window (the handlers of one received batch finish close
//! together) share a request; each caller still waits for its own result, so a message is
//! deleted only after its event is out.
use std::time::Duration;

use aws_sdk_sns::{types::PublishBatchRequestEntry, Client};
use tokio::sync::{mpsc, oneshot};

use super::port_error;
use crate::{ports::Publisher, PortError, PortErrorKind};

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

async fn run(
    client: Client,
    topic_arn: String,
    window: Duration,
    mut receiver: mpsc::Receiver<Pending>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < 10 {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(next)) => batch.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        send(&client, &topic_arn, batch).await;
    }
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
            let error = port_error(operation, e);
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
            .map_err(|e| port_error("sns:ListTopics", e))?;
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

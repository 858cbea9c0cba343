//! The `Publisher` port on SNS.
use aws_sdk_sns::Client;

use super::port_error;
use crate::{ports::Publisher, PortError, PortErrorKind};

/// Publishes to one topic.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsPublisher {
    /// A publisher to `topic_arn`.
    pub fn new(client: Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }
}

impl Publisher for SnsPublisher {
    async fn publish(&self, body: String) -> Result<(), PortError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            .send()
            .await
            .map_err(|e| port_error(format!("sns:Publish {}", self.topic_arn), e))?;
        Ok(())
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

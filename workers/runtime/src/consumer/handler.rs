//! What a stage implements ([`Handler`]) and how it says a message failed ([`HandleError`]):
//! retry through the queue, or dead-letter now.
use std::{error::Error as StdError, time::Duration};

use crate::{ports::ReceivedMessage, PortError};

/// What to do with a message whose handling failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Leave it on the queue; it comes back after a backoff.
    Retry,
    /// It can never succeed: copy it to the dead-letter queue and delete it.
    DeadLetter,
    /// Nothing is wrong with it, but it must wait (a spent budget): send it again as a new
    /// message delayed by `retry_after` and delete this one, so the wait does not count
    /// toward the dead-letter queue's `maxReceiveCount`.
    Requeue,
}

/// A failed handling, with the decision of what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{error_class}")]
pub struct HandleError {
    /// Retry or dead-letter.
    pub disposition: Disposition,
    /// Stable class for logs and dead-letter attributes, for example `malformed_message`.
    pub error_class: &'static str,
    /// What went wrong.
    #[source]
    pub source: Box<dyn StdError + Send + Sync>,
    /// For a retry: when the message should come back, instead of the receive-count backoff.
    pub retry_after: Option<Duration>,
}

impl HandleError {
    /// A failure that may succeed on a later delivery.
    pub fn retry(
        error_class: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            disposition: Disposition::Retry,
            error_class,
            source: source.into(),
            retry_after: None,
        }
    }

    /// A failure that may succeed once `delay` has passed (a lease held elsewhere ends): an
    /// expected wait, logged at info rather than as a failure.
    pub fn retry_after(
        error_class: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
        delay: Duration,
    ) -> Self {
        Self {
            retry_after: Some(delay),
            ..Self::retry(error_class, source)
        }
    }

    /// A message that must wait `delay` through no fault of its own: it goes back to the queue
    /// as a new message (see [`Disposition::Requeue`]).
    pub fn requeue(
        error_class: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
        delay: Duration,
    ) -> Self {
        Self {
            disposition: Disposition::Requeue,
            retry_after: Some(delay),
            ..Self::retry(error_class, source)
        }
    }

    /// A failure that will never succeed.
    pub fn dead_letter(
        error_class: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            disposition: Disposition::DeadLetter,
            error_class,
            source: source.into(),
            retry_after: None,
        }
    }

    /// Classifies a port failure: transient ones are retried, the rest dead-lettered (they need
    /// a person: a permission, a missing resource), where `dlq replay` picks them up later.
    pub fn from_port(error_class: &'static str, error: PortError) -> Self {
        if error.is_transient() {
            Self::retry(error_class, error)
        } else {
            Self::dead_letter(error_class, error)
        }
    }
}

/// Dead-letter classes a replay can never fix: the message's own bytes are what is wrong (a
/// body that is not the JSON it should be). The console offers no replay for them.
pub const NEVER_REPLAYABLE: [&str; 2] = ["malformed_message", "malformed_event"];

impl From<imgflow_messages::MessageError> for HandleError {
    /// A body that cannot be read never will be: dead-letter it, classed by why.
    fn from(e: imgflow_messages::MessageError) -> Self {
        let class = match e {
            imgflow_messages::MessageError::UnsupportedSchema { .. } => "unsupported_schema",
            imgflow_messages::MessageError::Malformed { .. } => "malformed_message",
        };
        Self::dead_letter(class, e)
    }
}

/// The error and all its causes, `": "`-separated, for logs and dead-letter attributes.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether a poller may receive now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Receive as usual.
    Open,
    /// Receive nothing for `for_`: what the handler would do with a message is on hold (a
    /// spent detector budget), so messages wait in the queue, untouched.
    Paused {
        /// How long.
        for_: Duration,
        /// Why, for the log.
        why: String,
    },
}

/// A stage's logic for one message. Handlers must be idempotent: delivery is at-least-once.
pub trait Handler: Send + Sync + 'static {
    /// Handles one message; `Ok` deletes it.
    fn handle(
        &self,
        message: &ReceivedMessage,
    ) -> impl std::future::Future<Output = Result<(), HandleError>> + Send;

    /// Asked before every receive; open unless the handler says otherwise.
    fn admission(&self) -> impl std::future::Future<Output = Admission> + Send {
        async { Admission::Open }
    }
}

//! The error every port returns. Adapters classify AWS errors once, here; the consumer and
//! handlers decide retries from [`PortErrorKind`] alone.

/// How a failed call should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// The thing asked for does not exist (object, item, queue).
    NotFound,
    /// The service asked us to slow down; retry later, more slowly.
    Throttled,
    /// A transient fault (5xx, timeout, connection); retrying may succeed.
    Retryable,
    /// The input itself can never be processed (for example an image the detector refuses).
    Invalid,
    /// Retrying will not help until someone changes something (permissions, configuration).
    Fatal,
}

impl PortErrorKind {
    /// Whether the same call may succeed later.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Throttled | Self::Retryable)
    }

    /// A stable name for logs and dead-letter attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Throttled => "throttled",
            Self::Retryable => "retryable",
            Self::Invalid => "invalid",
            Self::Fatal => "fatal",
        }
    }
}

/// A failed port call: what was being done, how to treat it, and the service's words.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct PortError {
    /// How to treat it.
    pub kind: PortErrorKind,
    /// What was being done, for example `s3:HeadObject s3://bucket/key`.
    pub operation: String,
    /// The service's error code and message, or the transport failure.
    pub message: String,
}

impl PortError {
    /// A new error.
    pub fn new(
        kind: PortErrorKind,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            operation: operation.into(),
            message: message.into(),
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

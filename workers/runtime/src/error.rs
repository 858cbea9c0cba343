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

/// A failed port call: what was being done, how to treat it, the service's words, and the
/// underlying error (the SDK's, with its request id and raw response) as the source.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct PortError {
    /// How to treat it.
    pub kind: PortErrorKind,
    /// What was being done, for example `s3:HeadObject s3://bucket/key`.
    pub operation: String,
    /// The service's error code and message, or the transport failure, in one line.
    pub message: String,
    /// The error this one was classified from, for `-v` and debug logs.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
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
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

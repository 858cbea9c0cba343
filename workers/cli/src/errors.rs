//! One line telling the operator what to do about a failure, from the kind of the first
//! [`PortError`] in its chain: the error itself already says what failed, in one line.
use imgflow_runtime::{PortError, PortErrorKind};

/// A hint for `error`, when there is one to give.
pub fn hint(error: &anyhow::Error, prefix: &str) -> Option<String> {
    let port = error.chain().find_map(|e| e.downcast_ref::<PortError>())?;
    let text = format!("{} {}", port.operation, port.message);
    if text.contains("PurgeQueueInProgress") {
        return Some("SQS allows one purge per queue every 60 s; try again in a minute".into());
    }
    if port.message.starts_with("cannot reach the service") || text.contains("dispatch failure") {
        let target = std::env::var("AWS_ENDPOINT_URL")
            .map(|url| format!("the endpoint {url} (AWS_ENDPOINT_URL)"))
            .unwrap_or_else(|_| "AWS".into());
        return Some(format!(
            "cannot reach {target}: is it running (locally: scripts/emulator start) and the network up?"
        ));
    }
    if text.contains("credentials") || text.contains("identity") {
        return Some(
            "no usable AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
                .into(),
        );
    }
    match port.kind {
        PortErrorKind::NotFound => Some(format!(
            "the resources for prefix {prefix:?} do not exist: run `imgflow provision` \
             (or pass the prefix they were created under with --prefix / IMGFLOW_PREFIX)"
        )),
        PortErrorKind::Throttled => Some("AWS is throttling these calls; try again shortly".into()),
        PortErrorKind::Fatal
            if text.contains("AccessDenied") || text.contains("not authorized") =>
        {
            Some(
                "the caller lacks a permission: attach the stack's OperatorPolicy (see the README)"
                    .into(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_queue_says_to_provision() {
        let e = anyhow::Error::new(PortError::new(
            PortErrorKind::NotFound,
            "sqs:GetQueueUrl ux-ingest",
            "AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist.",
        ))
        .context("reading the status");
        assert!(hint(&e, "ux").unwrap().contains("imgflow provision"));
    }

    #[test]
    fn a_second_purge_says_to_wait() {
        let e = anyhow::Error::new(PortError::new(
            PortErrorKind::Fatal,
            "sqs:PurgeQueue",
            "AWS.SimpleQueueService.PurgeQueueInProgress: Only one PurgeQueue operation ...",
        ));
        assert!(hint(&e, "ux").unwrap().contains("60 s"));
    }

    #[test]
    fn other_errors_get_no_hint() {
        assert!(hint(&anyhow::anyhow!("no files"), "ux").is_none());
    }
}

//! One line telling the operator what to do about a failure, from the kind of the first
//! [`PortError`] in its chain: the error itself already says what failed, in one line.
use imgflow_runtime::{PortError, PortErrorKind};

/// A hint for `error`, when there is one to give. `region` is the one the command called.
pub fn hint(error: &anyhow::Error, prefix: &str, region: &str) -> Option<String> {
    let port = error.chain().find_map(|e| e.downcast_ref::<PortError>())?;
    let text = format!("{} {}", port.operation, port.message);
    if text.contains("PurgeQueueInProgress") {
        return Some("SQS allows one purge per queue every 60 s; try again in a minute".into());
    }
    // The adapters' own words for a connection that failed (an I/O error or a timeout in the
    // SDK's dispatch); settings that cannot work were refused before any call.
    if port.message.starts_with("cannot reach the service") {
        let target = std::env::var("AWS_ENDPOINT_URL")
            .map(|url| format!("the endpoint {url} (AWS_ENDPOINT_URL)"))
            .unwrap_or_else(|_| "AWS".into());
        return Some(format!(
            "cannot reach {target}: is it running (locally: scripts/emulator start) and the network up?"
        ));
    }
    match port.kind {
        // A stack in another region looks exactly like none: name the one searched, so that
        // no one provisions a second deployment by mistake.
        PortErrorKind::NotFound => Some(format!(
            "the resources for prefix {prefix:?} do not exist in region {region}: if they were \
             created elsewhere, pass that region (AWS_REGION) and prefix (--prefix); otherwise \
             run `AWS_REGION={region} imgflow provision --prefix {prefix}`"
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
        let hint = hint(&e, "ux", "eu-west-2").unwrap();
        assert!(hint.contains("imgflow provision"), "{hint}");
        assert!(hint.contains("in region eu-west-2"), "{hint}");
    }

    #[test]
    fn a_second_purge_says_to_wait() {
        let e = anyhow::Error::new(PortError::new(
            PortErrorKind::Fatal,
            "sqs:PurgeQueue",
            "AWS.SimpleQueueService.PurgeQueueInProgress: Only one PurgeQueue operation ...",
        ));
        assert!(hint(&e, "ux", "eu-west-2").unwrap().contains("60 s"));
    }

    #[test]
    fn other_errors_get_no_hint() {
        assert!(hint(&anyhow::anyhow!("no files"), "ux", "eu-west-2").is_none());
    }
}

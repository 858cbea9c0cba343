//! The join of the two branches that run in parallel after ingest (label → store, and
//! thumbnail), without a state machine: each branch writes its own fact to the item, and
//! whichever finds the other's fact already there completes the image with a conditional
//! write, then announces it on `image-completed`.
//!
//! Exactly one completion is recorded per image, whatever the interleaving: DynamoDB orders
//! the writes to one item, and the later of the two branches' completion attempts comes after
//! both facts. The completion belongs to the message that recorded it for
//! [`COMPLETION_LEASE`]: a duplicate of the same branch's message (another id) arriving
//! meanwhile is refused, so two duplicates at once announce once. A branch cut short between
//! recording and announcing (a crash, a failed publish) finds its own unannounced completion
//! when its message comes back (the same id), and announces it then; after the lease, any
//! message of that branch may (a replay from the dead-letter queue has a new id). An
//! announced completion is never announced again. The one window left: a message that holds
//! the completion longer than the lease before announcing, while a duplicate arrives.
use imgflow_messages::{ImageCompleted, ImageRef, StageMessage, SCHEMA_VERSION};

use std::time::Duration;

use crate::{
    clock,
    consumer::HandleError,
    ports::{Branch, CompletionClaim, ImageTable, Join, Publisher},
};

/// How long the message that recorded a completion holds it alone: far longer than a publish
/// takes, shorter than a message's trip through the dead-letter queue and back.
pub const COMPLETION_LEASE: Duration = Duration::from_secs(300);

/// Completes `image` for `branch` when `join` says both branches have written: records the
/// completion for the message `token` (carrying `generation`, see [`CompletionClaim`]),
/// publishes `ImageCompleted` with `publisher`, and marks it announced.
pub async fn complete_if_ready<T: ImageTable, P: Publisher>(
    table: &T,
    publisher: &P,
    image: &ImageRef,
    branch: Branch,
    join: Join,
    token: &str,
    generation: &str,
) -> Result<(), HandleError> {
    if join != Join::Ready {
        return Ok(());
    }
    let now = clock::now_rfc3339();
    let claim = CompletionClaim {
        token: token.to_owned(),
        now: now.clone(),
        until: clock::rfc3339_after(COMPLETION_LEASE),
        generation: generation.to_owned(),
    };
    let record = table
        .complete(&image.image_id, branch, &claim)
        .await
        .map_err(|e| HandleError::from_port("completion_failed", e))?;
    let Some(record) = record else {
        return Ok(());
    };
    let completed_at = record.completed_at.clone().unwrap_or(now);
    let event = ImageCompleted {
        schema_version: SCHEMA_VERSION,
        image: image.clone(),
        label_names: record
            .top_labels(usize::MAX)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        thumbnail: record.thumbnail,
        completed_at,
        completed_by: branch.as_str().to_owned(),
    };
    publisher
        .publish(event.encode())
        .await
        .map_err(|e| HandleError::from_port("publish_failed", e))?;
    table
        .completion_announced(&image.image_id)
        .await
        .map_err(|e| HandleError::from_port("completion_failed", e))?;
    if let Some(seconds) = clock::seconds_between(&image.received_at, &event.completed_at) {
        metrics::histogram!("imgflow_completion_seconds").record(seconds);
    }
    tracing::info!(completed_by = branch.as_str(), "image completed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_branch_that_finds_the_other_done_is_the_one_to_complete() {
        let t = Branch::Thumbnail;
        assert_eq!(Join::after(t, false, None, false), Join::Waiting);
        assert_eq!(Join::after(t, true, None, false), Join::Ready);
        // Its own unannounced completion: a redelivery after a crash announces it.
        assert_eq!(Join::after(t, true, Some("thumbnail"), false), Join::Ready);
        assert_eq!(
            Join::after(t, true, Some("thumbnail"), true),
            Join::Completed
        );
        // The other branch's completion is the other branch's to announce.
        assert_eq!(Join::after(t, true, Some("labels"), false), Join::Completed);
    }
}

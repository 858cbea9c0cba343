//! The dead-letter page: what `imgflow dlq inspect` shows for one stage, and the commands
//! that can help here, written for this deployment.
use std::fmt::Write;

use imgflow_operations::dlq::Inspection;

use crate::console::{esc, layout, Nav};

/// What `imgflow dlq inspect` shows, for one stage; `command` writes an `imgflow` command as
/// it pastes for this deployment (region and prefix).
pub fn page(stage: &str, inspection: &Inspection, command: &dyn Fn(&str) -> String) -> String {
    let stage_name = stage;
    let stage = esc(stage);
    let mut body = format!(
        "<h1>Dead letters: {stage}</h1>\
         <p>{} message(s) in <code>{stage}</code>'s dead-letter queue{}.</p>",
        inspection.count,
        inspection
            .oldest_age
            .map(|a| format!("; the oldest read is {} s old", a.as_secs()))
            .unwrap_or_default()
    );
    if inspection.read == 0 && inspection.count > 0 {
        let _ = write!(
            body,
            "<form class=\"sample\" method=\"post\" action=\"/dlq/{stage}\">\
             <button type=\"submit\">Read up to 10 and group them by reason</button> \
             Every message stays in the queue; each read counts as one receive.</form>"
        );
    }
    if !inspection.by_reason.is_empty() {
        body.push_str(
            "<table class=\"reasons\"><thead><tr><th>Messages</th><th>Class</th><th>Error</th></tr></thead><tbody>",
        );
        for ((class, text), n) in &inspection.by_reason {
            let _ = write!(
                body,
                "<tr><td>{n}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(class),
                esc(text)
            );
        }
        body.push_str("</tbody></table>");
    }
    if !inspection.samples.is_empty() {
        body.push_str("<h2>Samples</h2>");
        for sample in &inspection.samples {
            let _ = write!(body, "<pre class=\"sample\">{}</pre>", esc(sample));
        }
    }
    body.push_str(&what_to_do(stage_name, inspection, command));
    body.push_str("<p><a href=\"/\">← Pipeline</a></p>");
    layout(&format!("Dead letters: {stage}"), Nav::Other, &body)
}

/// The commands for the messages read: a replay of those a replay can fix (by their reason
/// when some cannot be), a purge for those it never can (a body that is not JSON).
fn what_to_do(stage: &str, inspection: &Inspection, command: &dyn Fn(&str) -> String) -> String {
    let never = |class: &str| imgflow_runtime::consumer::NEVER_REPLAYABLE.contains(&class);
    let classes: std::collections::BTreeSet<&str> = inspection
        .by_reason
        .keys()
        .map(|(class, _)| class.as_str())
        .collect();
    let (hopeless, fixable): (Vec<&str>, Vec<&str>) = classes.into_iter().partition(|c| never(c));
    let mut out = String::from("<h2>What to do</h2>");
    if !fixable.is_empty() || hopeless.is_empty() {
        let replays: Vec<String> = if hopeless.is_empty() {
            vec![
                format!(
                    "{}   # all of them",
                    command(&format!("dlq replay --stage {stage}"))
                ),
                format!(
                    "{}   # see what would move",
                    command(&format!("dlq replay --stage {stage} --dry-run"))
                ),
            ]
        } else {
            fixable
                .iter()
                .map(|class| command(&format!("dlq replay --stage {stage} --reason {class}")))
                .collect()
        };
        let _ = write!(
            out,
            "<p>Fix the cause, then move them back:</p><pre>{}</pre>",
            esc(&replays.join("\n"))
        );
    }
    // A purge empties the whole queue: offered only when every message in it was read.
    if !hopeless.is_empty() && (inspection.read as u64) < inspection.count {
        let _ = write!(
            out,
            "<p>{} can never succeed, however often replayed; {} of {} messages were read, \
             so look at all of them before dropping any (a purge empties the queue):</p>\
             <pre>{}</pre>",
            esc(&hopeless.join(", ")),
            inspection.read,
            inspection.count,
            esc(&command(&format!(
                "dlq inspect --stage {stage} --sample {}",
                inspection.count
            )))
        );
    } else if !hopeless.is_empty() {
        let then = if fixable.is_empty() {
            "Keep a sample if you need one, then drop them"
        } else {
            "Once the others are replayed, drop what is left (a purge empties the queue)"
        };
        let _ = write!(
            out,
            "<p>{} can never succeed, however often replayed: the message itself is not what \
             the stage reads. {then}:</p><pre>{}</pre>",
            esc(&hopeless.join(", ")),
            esc(&command(&format!("dlq purge --stage {stage} --yes")))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspection(reasons: &[(&str, usize)]) -> Inspection {
        Inspection {
            count: reasons.iter().map(|(_, n)| *n as u64).sum(),
            read: reasons.iter().map(|(_, n)| n).sum(),
            oldest_age: None,
            by_reason: reasons
                .iter()
                .map(|(class, n)| ((class.to_string(), "why".to_owned()), *n))
                .collect(),
            samples: Vec::new(),
        }
    }

    /// Every command pastes for this deployment; none replays what can never succeed.
    #[test]
    fn the_dead_letter_page_offers_only_commands_that_can_work_here() {
        let command = |args: &str| format!("AWS_REGION=eu-west-2 imgflow {args} --prefix uxa");
        let html = page("ingest", &inspection(&[("malformed_message", 3)]), &command);
        assert!(!html.contains("dlq replay"), "{html}");
        assert!(
            html.contains(
                "AWS_REGION=eu-west-2 imgflow dlq purge --stage ingest --yes --prefix uxa"
            ),
            "{html}"
        );
        let html = page(
            "label",
            &inspection(&[("malformed_message", 1), ("detector_throttled", 4)]),
            &command,
        );
        assert!(
            html.contains(
                "AWS_REGION=eu-west-2 imgflow dlq replay --stage label --reason detector_throttled --prefix uxa"
            ),
            "{html}"
        );
        assert!(!html.contains("--reason malformed_message"), "{html}");
        assert!(html.contains("Once the others are replayed"), "{html}");
        // Ten read of fifty: no purge, which would drop the forty unread.
        let mut partial = inspection(&[("malformed_message", 10)]);
        partial.count = 50;
        let html = page("ingest", &partial, &command);
        assert!(!html.contains("dlq purge"), "{html}");
        assert!(
            html.contains("dlq inspect --stage ingest --sample 50"),
            "{html}"
        );
        // Not read yet: the general replay, with the deployment's region and prefix.
        let html = page("store", &inspection(&[]), &command);
        assert!(
            html.contains("AWS_REGION=eu-west-2 imgflow dlq replay --stage store --prefix uxa"),
            "{html}"
        );
    }
}

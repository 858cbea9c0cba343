//! The Duplicates page (exact copies apart from near-duplicates, what `imgflow duplicates`
//! prints) and an image page's near-duplicates.
use std::fmt::Write;

use imgflow_messages::ImageRecord;
use imgflow_operations::duplicates::Duplicates;

use crate::console::{esc, layout, Nav};

fn link(record: &ImageRecord) -> String {
    format!(
        "<a href=\"/images/{}\">{}</a>",
        esc(&record.id),
        esc(&record.key)
    )
}

/// The Duplicates page.
pub fn page(found: &Duplicates) -> String {
    let mut body = String::from(
        "<h1>Duplicates</h1><p>Among the pairs found most recently. Exact copies got their \
         original's labels with no detector call; near-duplicates (the same photo resized, \
         re-encoded or cropped) are labelled on their own.</p>\
         <section><h2>Exact copies</h2>",
    );
    if found.exact.is_empty() {
        body.push_str("<p class=\"hint\">None found.</p>");
    } else {
        body.push_str("<table class=\"exact\"><thead><tr><th>Original</th><th>Copies</th></tr></thead><tbody>");
        for group in &found.exact {
            let copies: Vec<String> = group.copies.iter().map(link).collect();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td></tr>",
                link(&group.original),
                copies.join(", ")
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section><section><h2>Near-duplicates</h2>");
    if found.near.is_empty() {
        body.push_str("<p class=\"hint\">None found.</p>");
    } else {
        body.push_str(
            "<table class=\"near\"><thead><tr><th>Bits of 64 that differ</th><th>Image</th>\
             <th>Image</th></tr></thead><tbody>",
        );
        for pair in &found.near {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                pair.distance,
                link(&pair.earlier),
                link(&pair.later)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    layout("Duplicates", Nav::Duplicates, &body)
}

/// An image's near-duplicates, with their distance, for its page; nothing when it has none.
pub fn near_section(image: &ImageRecord, near: &[(ImageRecord, u32)]) -> String {
    if near.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section class=\"near-duplicates\"><h2>Near-duplicates</h2><ul>");
    for (other, distance) in near {
        let original_of = |r: &ImageRecord| r.duplicate_of.clone().unwrap_or_else(|| r.id.clone());
        let exact = (image.duplicate_of.is_some() || other.duplicate_of.is_some())
            && original_of(image) == original_of(other);
        let _ = write!(
            out,
            "<li data-distance=\"{distance}\">{} — {}</li>",
            link(other),
            if exact {
                "an exact copy".to_owned()
            } else {
                format!("{distance} of 64 bits differ")
            }
        );
    }
    out.push_str("</ul></section>");
    out
}

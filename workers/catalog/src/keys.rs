//! Every key the read model derives, in one pure module: the DynamoDB adapters and the fakes
//! both use it, so they cannot disagree about what a label search or a gallery page finds.
//!
//! - Gallery: the images table's keys-only indexes `by_day` (partition `day`, the
//!   `YYYY-MM-DD` of `received_at`) and `by_status` (partition `status_day`,
//!   `<status>#<day>`), both sorted by `received_key` (`<received_at>#<id>`).
//! - Label index: `pk = label#<name, lowercased>`, `sk = <labeled_at>#<image id>`, one entry
//!   per image and label *or parent* name.
//! - Throughput: `pk = rate#<stage>`, `sk = <YYYY-MM-DDTHH:MM>`.
//! - Object ledger: `pk = object#<bucket>/<key>`, `sk = object`: the ids created under the key
//!   and its latest sequenced event, for deletions ([`imgflow_runtime::ports::ObjectLedger`]).
use std::collections::BTreeMap;

use base64::Engine;
use imgflow_messages::{ImageStatus, Label};
use imgflow_runtime::ports::StoredLabels;
use serde::{Deserialize, Serialize};

/// The images table's index partitioned by day.
pub const BY_DAY_INDEX: &str = "by_day";
/// The images table's index partitioned by status and day.
pub const BY_STATUS_INDEX: &str = "by_status";
/// Images per page at most (BatchGetItem's limit).
pub const MAX_PAGE: usize = 100;

/// `day` of a `received_at`.
pub fn day_of(received_at: &str) -> &str {
    received_at.get(..10).unwrap_or(received_at)
}

/// `received_key` of an image: sorts by arrival, ties broken by id.
pub fn received_key(received_at: &str, id: &str) -> String {
    format!("{received_at}#{id}")
}

/// `status_day` of an image.
pub fn status_day(status: ImageStatus, received_at: &str) -> String {
    format!("{status}#{}", day_of(received_at))
}

/// One image under one label (or parent) name.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEntry {
    /// The name as the detector wrote it (`Cat`).
    pub name: String,
    /// The image.
    pub image_id: String,
    /// When the labels were produced.
    pub labeled_at: String,
    /// The label's confidence, or for a parent its most confident child's.
    pub confidence: f32,
}

impl LabelEntry {
    /// Its item's `(pk, sk)`.
    pub fn key(&self) -> (String, String) {
        (
            label_pk(&self.name),
            label_sort_key(&self.labeled_at, &self.image_id),
        )
    }
}

/// The partition holding images with label `name`, whatever its case.
pub fn label_pk(name: &str) -> String {
    format!("label#{}", name.trim().to_lowercase())
}

/// Sorts a label's images by labelling time, ties broken by id.
pub fn label_sort_key(labeled_at: &str, image_id: &str) -> String {
    format!("{labeled_at}#{image_id}")
}

/// The entries one image's labels produce: each label and each parent name once.
pub fn label_entries(image_id: &str, labeled_at: &str, labels: &[Label]) -> Vec<LabelEntry> {
    let mut by_name: BTreeMap<String, LabelEntry> = BTreeMap::new();
    let names = labels.iter().flat_map(|label| {
        std::iter::once(label.name.as_str())
            .chain(label.parents.iter().map(|p| p.name.as_str()))
            .map(move |name| (name, label.confidence))
    });
    for (name, confidence) in names {
        if name.trim().is_empty() {
            continue;
        }
        let entry = by_name
            .entry(name.trim().to_lowercase())
            .or_insert_with(|| LabelEntry {
                name: name.trim().to_owned(),
                image_id: image_id.to_owned(),
                labeled_at: labeled_at.to_owned(),
                confidence,
            });
        entry.confidence = entry.confidence.max(confidence);
    }
    by_name.into_values().collect()
}

/// What indexing `current` in place of `replaced` writes and deletes: `(put, delete)`.
pub fn label_changes(
    image_id: &str,
    current: &StoredLabels,
    replaced: Option<&StoredLabels>,
) -> (Vec<LabelEntry>, Vec<LabelEntry>) {
    let put = label_entries(image_id, &current.labeled_at, &current.labels);
    let delete = match replaced {
        Some(old) => label_entries(image_id, &old.labeled_at, &old.labels)
            .into_iter()
            .filter(|o| !put.iter().any(|n| n.key() == o.key()))
            .collect(),
        None => Vec::new(),
    };
    (put, delete)
}

/// The object ledger's item of one key (`sk` is [`OBJECT_SK`]).
pub fn object_pk(bucket: &str, key: &str) -> String {
    format!("object#{bucket}/{key}")
}

/// The object ledger's sort key: one item per object key.
pub const OBJECT_SK: &str = "object";

/// The throughput partition of a stage.
pub fn rate_pk(stage: &str) -> String {
    format!("rate#{stage}")
}

/// The minute a count belongs to, as the throughput log keys it: `YYYY-MM-DDTHH:MM` (UTC).
pub fn minute_of(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M").to_string()
}

/// Where a page ended. Opaque to clients: base64url of this as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cursor {
    /// The gallery: continue in `day`, after `received_key` `after` (from its start if none).
    Day { day: String, after: Option<String> },
    /// A label search: continue after the index sort key `after`.
    Label { after: String },
}

/// A page cursor that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("invalid page cursor ({0})")]
pub struct InvalidCursor(String);

impl Cursor {
    /// The cursor as clients see it.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("cursors serialize");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor a client sent back.
    pub fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|e| InvalidCursor(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| InvalidCursor(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgflow_messages::NamedRef;

    fn label(name: &str, confidence: f32, parents: &[&str]) -> Label {
        Label {
            name: name.into(),
            confidence,
            instances: vec![],
            parents: parents.iter().map(|p| NamedRef::new(*p)).collect(),
            categories: vec![],
        }
    }

    #[test]
    fn every_label_and_parent_is_indexed_once_case_insensitively() {
        let labels = [
            label("Cat", 91.0, &["Animal", "Pet"]),
            label("Dog", 97.0, &["animal"]),
            label("Animal", 80.0, &[]),
        ];
        let entries = label_entries("id1", "2026-11-27T05:00:00.000000Z", &labels);
        let names: Vec<_> = entries.iter().map(|e| e.key().0).collect();
        assert_eq!(
            names,
            ["label#animal", "label#cat", "label#dog", "label#pet"]
        );
        let animal = &entries[0];
        assert_eq!(animal.name, "Animal");
        assert_eq!(
            animal.confidence, 97.0,
            "a parent is as likely as its likeliest child"
        );
        assert_eq!(
            animal.key().1,
            "2026-11-27T05:00:00.000000Z#id1",
            "sorts by labeled time, then id"
        );
    }

    #[test]
    fn label_partitions_ignore_case_and_surrounding_space() {
        assert_eq!(label_pk(" CAT "), label_pk("cat"));
        assert_ne!(label_pk("cat"), label_pk("cats"));
    }

    #[test]
    fn replacing_labels_deletes_only_the_entries_no_longer_written() {
        let old = StoredLabels {
            labeled_at: "2026-11-27T05:00:00.000000Z".into(),
            labels: vec![label("Cat", 90.0, &["Animal"])],
        };
        let same_time = StoredLabels {
            labeled_at: old.labeled_at.clone(),
            labels: vec![label("Dog", 90.0, &["Animal"])],
        };
        let (put, delete) = label_changes("id", &same_time, Some(&old));
        assert_eq!(put.len(), 2);
        let deleted: Vec<_> = delete.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(deleted, ["Cat"], "Animal is rewritten under the same key");

        let later = StoredLabels {
            labeled_at: "2026-11-28T05:00:00.000000Z".into(),
            ..same_time
        };
        let (_, delete) = label_changes("id", &later, Some(&old));
        assert_eq!(delete.len(), 2, "a new time moves every entry");
        assert!(label_changes("id", &later, None).1.is_empty());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor::Day {
            day: "2026-11-27".into(),
            after: Some("2026-11-27T05:00:00.000000Z#abc".into()),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not a cursor").is_err());
    }

    #[test]
    fn gallery_keys_sort_by_arrival_within_a_day() {
        let at = "2026-11-27T05:00:00.000000Z";
        assert_eq!(day_of(at), "2026-11-27");
        assert_eq!(status_day(ImageStatus::Labeled, at), "labeled#2026-11-27");
        assert!(received_key(at, "b") > received_key(at, "a"));
    }
}

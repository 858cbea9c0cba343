//! Every key the read model derives, in one pure module: the DynamoDB adapters and the fakes
//! both use it, so they cannot disagree about what a label search or a gallery page finds.
//!
//! - Gallery: the images table's keys-only indexes `by_day` (partition `day`,
//!   `<YYYY-MM-DD of received_at>#<shard>`) and `by_status` (partition `status_day`,
//!   `<status>#<day>#<shard>`), both sorted by `received_key` (`<received_at>#<id>`).
//! - Label index: `pk = label.<shard>#<name, lowercased>`, `sk = <labeled_at>#<image id>`, one
//!   entry per image and label *or parent* name.
//! - Shards: every partition above is split [`INDEX_SHARDS`] ways by a hash of the image id,
//!   because DynamoDB throttles writes past about 1,000 per second to one partition key
//!   (secondary indexes included): one day, one status or one common label would otherwise
//!   cap the whole pipeline. Reads fan out over the shards and merge ([`merge_newest`]).
//!   Items keyed before sharding keep their unsharded key, which reads include as one more
//!   partition ([`day_partitions`], [`label_partitions`]).
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

/// How many ways each gallery and label partition is split. Reads cost one Query per shard,
/// so this is the trade between write headroom and read requests; it may only change
/// together with a reindex, because readers must find what writers keyed.
pub const INDEX_SHARDS: u32 = 8;

/// The shard an image's index entries go to: FNV-1a of its id, so every entry of one image
/// lands in one shard and the ids (hex of SHA-256) spread evenly.
pub fn shard_of(image_id: &str) -> u32 {
    let hash = image_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % INDEX_SHARDS
}

/// The `YYYY-MM-DD` of a `received_at`.
pub fn day_of(received_at: &str) -> &str {
    received_at.get(..10).unwrap_or(received_at)
}

/// `day` of an image: the day it was received and its shard.
pub fn day_key(received_at: &str, image_id: &str) -> String {
    format!("{}#{}", day_of(received_at), shard_of(image_id))
}

/// Every `day` partition holding `day`'s images: its shards, then the unsharded key of items
/// written before sharding.
pub fn day_partitions(day: &str) -> Vec<String> {
    (0..INDEX_SHARDS)
        .map(|shard| format!("{day}#{shard}"))
        .chain(std::iter::once(day.to_owned()))
        .collect()
}

/// `received_key` of an image: sorts by arrival, ties broken by id.
pub fn received_key(received_at: &str, id: &str) -> String {
    format!("{received_at}#{id}")
}

/// `status_day` of an image.
pub fn status_day(status: ImageStatus, received_at: &str, image_id: &str) -> String {
    format!("{status}#{}", day_key(received_at, image_id))
}

/// Every `status_day` partition holding `day`'s images in `status` (see [`day_partitions`]).
pub fn status_day_partitions(status: ImageStatus, day: &str) -> Vec<String> {
    day_partitions(day)
        .into_iter()
        .map(|day| format!("{status}#{day}"))
        .collect()
}

/// The gallery index keys of an image as its item holds them; `None` for a deleted image,
/// whose item drops them to leave both (sparse) indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalleryKeys {
    /// `by_day`'s partition.
    pub day: String,
    /// `by_status`'s partition.
    pub status_day: String,
    /// Both indexes' sort key.
    pub received_key: String,
}

impl GalleryKeys {
    /// The keys of `record`, or `None` once it is deleted or replaced.
    pub fn of(record: &imgflow_messages::ImageRecord) -> Option<Self> {
        (!record.status.is_gone()).then(|| Self {
            day: day_key(&record.received_at, &record.id),
            status_day: status_day(record.status, &record.received_at, &record.id),
            received_key: received_key(&record.received_at, &record.id),
        })
    }
}

/// One partition's answer to a newest-first listing: `(sort key, item)` pairs, newest first,
/// and whether the partition holds more past the last.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionPage<T> {
    /// What the partition returned.
    pub items: Vec<(String, T)>,
    /// Whether it stopped at its limit with more to read.
    pub more: bool,
}

/// Merges the pages of one listing read from several partitions, each queried newest first
/// below the same sort key with the same `limit`: the `limit` newest items of all (a sort key
/// seen twice counts once), and the sort key to continue below when any partition may hold
/// more. Exact because a partition that stopped at `limit` contributed `limit` items at or
/// above its last one, so nothing it left unread can be newer than the merged page's last.
pub fn merge_newest<T>(pages: Vec<PartitionPage<T>>, limit: usize) -> (Vec<T>, Option<String>) {
    let mut more = pages.iter().any(|p| p.more);
    let mut all: Vec<(String, T)> = pages.into_iter().flat_map(|p| p.items).collect();
    all.sort_by(|a, b| b.0.cmp(&a.0));
    all.dedup_by(|a, b| a.0 == b.0);
    if all.len() > limit {
        all.truncate(limit);
        more = true;
    }
    let next = more
        .then(|| all.last().map(|(key, _)| key.clone()))
        .flatten();
    (all.into_iter().map(|(_, item)| item).collect(), next)
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
            label_pk(&self.name, shard_of(&self.image_id)),
            label_sort_key(&self.labeled_at, &self.image_id),
        )
    }
}

/// Shard `shard` of the partition holding images with label `name`, whatever its case. The
/// shard comes before the `#` so that no name can spell another's key.
pub fn label_pk(name: &str, shard: u32) -> String {
    format!("label.{shard}#{}", label_key_name(name))
}

/// A label name as keys hold it: matched whatever its case and surrounding space.
fn label_key_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Every partition holding images with label `name`: its shards, then the unsharded key
/// (`label#<name>`) of entries written before sharding.
pub fn label_partitions(name: &str) -> Vec<String> {
    (0..INDEX_SHARDS)
        .map(|shard| label_pk(name, shard))
        .chain(std::iter::once(format!("label#{}", label_key_name(name))))
        .collect()
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
            .entry(label_key_name(name))
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
        let shard = shard_of("id1");
        assert_eq!(
            names,
            ["animal", "cat", "dog", "pet"].map(|n| format!("label.{shard}#{n}"))
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
        assert_eq!(label_pk(" CAT ", 3), label_pk("cat", 3));
        assert_ne!(label_pk("cat", 3), label_pk("cats", 3));
        assert_ne!(label_pk("cat", 3), label_pk("cat", 4));
        let all = label_partitions("Cat");
        assert_eq!(all.len() as u32, INDEX_SHARDS + 1);
        assert_eq!(
            all.last().unwrap(),
            "label#cat",
            "the unsharded key is read too"
        );
        assert!(all.contains(&label_pk("cat", INDEX_SHARDS - 1)));
    }

    #[test]
    fn ids_spread_evenly_over_the_shards_and_keep_theirs() {
        let mut counts = vec![0u32; INDEX_SHARDS as usize];
        for i in 0..8000 {
            let id = imgflow_messages::image_id("b", &format!("k{i}"), "e");
            counts[shard_of(&id) as usize] += 1;
            assert_eq!(shard_of(&id), shard_of(&id.clone()));
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(
            *min > 850 && *max < 1150,
            "8000 ids over {INDEX_SHARDS} shards: {counts:?}"
        );
    }

    #[test]
    fn merging_partitions_keeps_the_newest_and_continues_exactly_below_them() {
        let page = |keys: &[&str], more| PartitionPage {
            items: keys
                .iter()
                .map(|k| (k.to_string(), k.to_string()))
                .collect(),
            more,
        };
        // Shard a stopped at its limit of 3; b has fewer; c repeats a key (legacy copy).
        let (items, next) = merge_newest(
            vec![
                page(&["9", "7", "5"], true),
                page(&["8", "2"], false),
                page(&["7"], false),
            ],
            3,
        );
        assert_eq!(items, ["9", "8", "7"]);
        assert_eq!(next.as_deref(), Some("7"), "5 and 2 come on the next page");
        let (items, next) = merge_newest(vec![page(&["4"], false), page(&["6"], false)], 3);
        assert_eq!(items, ["6", "4"]);
        assert_eq!(next, None, "every partition was read to its end");
        let (items, next) = merge_newest(vec![page(&["6", "5"], true), page(&[], false)], 2);
        assert_eq!(items, ["6", "5"]);
        assert_eq!(
            next.as_deref(),
            Some("5"),
            "a partition with more continues"
        );
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
        let shard = shard_of("a");
        assert_eq!(
            status_day(ImageStatus::Labeled, at, "a"),
            format!("labeled#2026-11-27#{shard}")
        );
        assert_eq!(day_key(at, "a"), format!("2026-11-27#{shard}"));
        let partitions = status_day_partitions(ImageStatus::Labeled, "2026-11-27");
        assert!(partitions.contains(&status_day(ImageStatus::Labeled, at, "a")));
        assert_eq!(partitions.last().unwrap(), "labeled#2026-11-27");
        assert!(received_key(at, "b") > received_key(at, "a"));
    }
}

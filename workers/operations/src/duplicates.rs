//! `imgflow duplicates` and the console's Duplicates page: the recent pairs of the near-
//! duplicate index, split into exact copies (labelled from their original, no detector call)
//! and near-duplicates (the same photo changed: resized, re-encoded, cropped), with their
//! images' items. Gone images (deleted, replaced) are left out.
use std::collections::{BTreeMap, HashMap};

use imgflow_aws::AwsClients;
use imgflow_messages::ImageRecord;
use imgflow_runtime::{
    config::Names,
    ports::{NearIndex, NearPair},
    PortError,
};

/// An original and its exact copies.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactGroup {
    /// The image whose labels the copies got.
    pub original: ImageRecord,
    /// Its copies.
    pub copies: Vec<ImageRecord>,
}

/// Two images that are the same photo changed.
#[derive(Debug, Clone, PartialEq)]
pub struct NearDuplicates {
    /// The earlier image.
    pub earlier: ImageRecord,
    /// The later one.
    pub later: ImageRecord,
    /// Bits of 64 that differ.
    pub distance: u32,
}

/// What the Duplicates page and `imgflow duplicates` show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Duplicates {
    /// Exact copies, grouped by original.
    pub exact: Vec<ExactGroup>,
    /// Near-duplicate pairs, nearest first.
    pub near: Vec<NearDuplicates>,
}

/// The duplicates among the `limit` most recent pairs.
pub async fn recent(
    aws: &AwsClients,
    names: &Names,
    limit: usize,
) -> Result<Duplicates, PortError> {
    let pairs = aws.index_table(names).recent_pairs(limit).await?;
    let mut ids: Vec<String> = pairs
        .iter()
        .flat_map(|p| [p.earlier.clone(), p.later.clone()])
        .collect();
    ids.sort();
    ids.dedup();
    let records = aws.catalog(names).batch_get(&ids).await?;
    Ok(group(&pairs, &records))
}

/// Splits `pairs` into exact copies and near-duplicates, from their items.
pub fn group(pairs: &[NearPair], records: &HashMap<String, ImageRecord>) -> Duplicates {
    let live = |id: &str| records.get(id).filter(|r| !r.status.is_gone());
    let mut exact: BTreeMap<String, Vec<ImageRecord>> = BTreeMap::new();
    let mut near = Vec::new();
    for pair in pairs {
        let (Some(a), Some(b)) = (live(&pair.earlier), live(&pair.later)) else {
            continue;
        };
        let original_of = |r: &ImageRecord| r.duplicate_of.clone().unwrap_or_else(|| r.id.clone());
        let copied = a.duplicate_of.is_some() || b.duplicate_of.is_some();
        if copied && original_of(a) == original_of(b) {
            let group = exact.entry(original_of(a)).or_default();
            for r in [a, b] {
                if r.duplicate_of.is_some() && !group.iter().any(|c| c.id == r.id) {
                    group.push(r.clone());
                }
            }
            continue;
        }
        near.push(NearDuplicates {
            earlier: a.clone(),
            later: b.clone(),
            distance: pair.distance,
        });
    }
    near.sort_by_key(|n| n.distance);
    let exact = exact
        .into_iter()
        .filter_map(|(original, mut copies)| {
            copies.sort_by(|a, b| a.key.cmp(&b.key));
            Some(ExactGroup {
                original: live(&original)?.clone(),
                copies,
            })
        })
        .collect();
    Duplicates { exact, near }
}

/// The duplicates as `imgflow duplicates` prints them.
pub fn text(duplicates: &Duplicates) -> String {
    let mut out =
        String::from("EXACT COPIES (labels copied from the original; no detector call)\n");
    if duplicates.exact.is_empty() {
        out.push_str("  none\n");
    }
    for group in &duplicates.exact {
        out.push_str(&format!(
            "  {}  ← {}\n",
            group.original.key,
            group
                .copies
                .iter()
                .map(|c| c.key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str("NEAR-DUPLICATES (bits of 64 that differ; labelled on their own)\n");
    if duplicates.near.is_empty() {
        out.push_str("  none\n");
    }
    for pair in &duplicates.near {
        out.push_str(&format!(
            "  {:>2}  {}  ~  {}\n",
            pair.distance, pair.earlier.key, pair.later.key
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgflow_messages::ImageStatus;

    fn record(id: &str, duplicate_of: Option<&str>, status: ImageStatus) -> ImageRecord {
        let mut r = ImageRecord::new(
            id.into(),
            "b".into(),
            format!("incoming/{id}.png"),
            "e".into(),
            "2026-12-07T10:00:00.000000Z".into(),
            status,
        );
        r.duplicate_of = duplicate_of.map(str::to_owned);
        r
    }

    fn pair(earlier: &str, later: &str, distance: u32) -> NearPair {
        NearPair {
            found_at: "2026-12-07T10:00:00.000000Z".into(),
            earlier: earlier.into(),
            later: later.into(),
            distance,
        }
    }

    #[test]
    fn copies_group_under_their_original_and_changed_photos_pair_apart() {
        let records: HashMap<String, ImageRecord> = [
            record("orig", None, ImageStatus::Labeled),
            record("copy1", Some("orig"), ImageStatus::Labeled),
            record("copy2", Some("orig"), ImageStatus::Labeled),
            record("small", None, ImageStatus::Labeled),
            record("gone", None, ImageStatus::Deleted),
        ]
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
        let pairs = [
            pair("orig", "copy1", 0),
            pair("orig", "copy2", 0),
            pair("copy1", "copy2", 0),
            pair("orig", "small", 6),
            pair("orig", "gone", 3),
        ];
        let found = group(&pairs, &records);
        assert_eq!(found.exact.len(), 1);
        assert_eq!(found.exact[0].original.id, "orig");
        let copies: Vec<&str> = found.exact[0]
            .copies
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(copies, ["copy1", "copy2"]);
        assert_eq!(found.near.len(), 1, "the deleted image is left out");
        assert_eq!(
            (found.near[0].later.id.as_str(), found.near[0].distance),
            ("small", 6)
        );
        let printed = text(&found);
        assert!(printed.contains("incoming/orig.png  ← incoming/copy1.png, incoming/copy2.png"));
        assert!(printed.contains("   6  incoming/orig.png  ~  incoming/small.png"));
    }
}

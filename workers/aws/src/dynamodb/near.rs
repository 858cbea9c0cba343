//! The near-duplicate index on the index table:
//! - a hash under each of its bands: `pk = near#<band>#<value>`, `sk = <image id>`, `hash`;
//! - each image's nearest near-duplicates (at most 20 linked per image): `pk =
//!   near-of#<image id>`, `sk = <distance, two digits>#<other id>`, `distance`;
//! - the pairs, newest first, in four shards: `pk = near-pairs#<0-3>`,
//!   `sk = <received_at>#<later id>#<earlier id>`, `distance`.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use futures::{stream, StreamExt, TryStreamExt};
use imgflow_runtime::{
    ports::{probes, NearIndex, NearMatch, NearPair, PerceptualHash, BANDS, NEAR_THRESHOLD},
    PortError,
};

use super::{
    dynamodb_error,
    index::{put_request as put, IndexTable},
};

/// Shards of the pair listing, so that no one partition takes every pair.
const PAIR_SHARDS: u64 = 4;
/// Most entries read from one band partition: a band value shared by many images (a common
/// featureless band) costs a bounded read.
const PER_BAND: i32 = 100;
/// Band queries at once.
const QUERIES_AT_ONCE: usize = 16;
/// Most near-duplicates linked per image, the nearest: a photo uploaded a thousand times links
/// each copy to 20 others, not to every one before it.
const MOST_LINKS: usize = 20;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u32) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn shard(id: &str) -> u64 {
    id.bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % PAIR_SHARDS
}

impl IndexTable {
    async fn query(
        &self,
        pk: String,
        newest_first: bool,
        limit: i32,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, PortError> {
        let output = self
            .client()
            .query()
            .table_name(self.name())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()))
            .scan_index_forward(!newest_first)
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(|e| dynamodb_error(format!("dynamodb:Query {} {pk}", self.name()), e))?;
        if output.last_evaluated_key.is_some() && pk.starts_with("near#") {
            // A band value shared by more images than one read takes: some are not compared.
            metrics::counter!("imgflow_near_band_truncated_total").increment(1);
            tracing::info!(partition = %pk, limit, "a near-duplicate band holds more entries than one lookup reads");
        }
        Ok(output.items.unwrap_or_default())
    }
}

impl NearIndex for IndexTable {
    async fn record(
        &self,
        image_id: &str,
        hash: PerceptualHash,
        at: &str,
    ) -> Result<Vec<NearMatch>, PortError> {
        // Its own entries first, then the lookup with consistent reads: of two images hashed at
        // once, the one that reads second finds the other.
        let bands: Vec<WriteRequest> = (0..BANDS)
            .map(|band| {
                put(vec![
                    ("pk", s(format!("near#{band}#{:04x}", hash.band(band)))),
                    ("sk", s(image_id)),
                    ("hash", s(hash.to_hex())),
                ])
            })
            .collect();
        self.batch_write(bands).await?;
        // The bands' own values first; the one-bit probes only when those found fewer than a
        // full set of links (a photo uploaded many times fills them at once, from the first
        // twelve reads).
        let keys = probes(&hash);
        let (exact, probed) = keys.split_at(BANDS);
        let mut nearest: HashMap<String, u32> = HashMap::new();
        // Four bands at a time, so that a flood of one photo stops after the first four reads.
        let rounds = exact.chunks(4).chain([probed]);
        for keys in rounds {
            if nearest.len() >= MOST_LINKS {
                break;
            }
            let found: Vec<Vec<HashMap<String, AttributeValue>>> = stream::iter(keys.to_vec())
                .map(|(band, value)| {
                    self.query(format!("near#{band}#{value:04x}"), false, PER_BAND)
                })
                .buffer_unordered(QUERIES_AT_ONCE)
                .try_collect()
                .await?;
            for item in found.iter().flatten() {
                let (Some(id), Some(other)) = (
                    text(item, "sk"),
                    text(item, "hash").and_then(|h| PerceptualHash::from_hex(&h)),
                ) else {
                    continue;
                };
                let distance = hash.distance(&other);
                if id != image_id && distance <= NEAR_THRESHOLD {
                    nearest.insert(id, distance);
                }
            }
        }
        let mut matches: Vec<NearMatch> = nearest
            .into_iter()
            .map(|(image_id, distance)| NearMatch { image_id, distance })
            .collect();
        matches.sort_by(|a, b| {
            a.distance
                .cmp(&b.distance)
                .then(a.image_id.cmp(&b.image_id))
        });
        matches.truncate(MOST_LINKS);

        let mut writes: Vec<WriteRequest> = Vec::new();
        for m in &matches {
            for (of, other) in [
                (image_id, m.image_id.as_str()),
                (m.image_id.as_str(), image_id),
            ] {
                // Sorted by distance, so a read of the first few finds the nearest.
                writes.push(put(vec![
                    ("pk", s(format!("near-of#{of}"))),
                    ("sk", s(format!("{:02}#{other}", m.distance))),
                    ("distance", n(m.distance)),
                ]));
            }
            writes.push(put(vec![
                ("pk", s(format!("near-pairs#{}", shard(image_id)))),
                ("sk", s(format!("{at}#{image_id}#{}", m.image_id))),
                ("distance", n(m.distance)),
            ]));
        }
        for chunk in writes.chunks(25).filter(|c| !c.is_empty()) {
            self.batch_write(chunk.to_vec()).await?;
        }
        Ok(matches)
    }

    async fn near(&self, image_id: &str) -> Result<Vec<NearMatch>, PortError> {
        let items = self
            .query(format!("near-of#{image_id}"), false, 2 * MOST_LINKS as i32)
            .await?;
        let mut matches: Vec<NearMatch> = items
            .iter()
            .filter_map(|item| {
                Some(NearMatch {
                    image_id: text(item, "sk")?.split_once('#')?.1.to_owned(),
                    distance: item.get("distance")?.as_n().ok()?.parse().ok()?,
                })
            })
            .collect();
        matches.sort_by_key(|m| m.distance);
        Ok(matches)
    }

    async fn recent_pairs(&self, limit: usize) -> Result<Vec<NearPair>, PortError> {
        let shards: Vec<Vec<HashMap<String, AttributeValue>>> = stream::iter(0..PAIR_SHARDS)
            .map(|shard| self.query(format!("near-pairs#{shard}"), true, limit as i32))
            .buffer_unordered(PAIR_SHARDS as usize)
            .try_collect()
            .await?;
        let mut pairs: Vec<NearPair> = shards
            .iter()
            .flatten()
            .filter_map(|item| {
                let sk = text(item, "sk")?;
                let mut parts = sk.splitn(3, '#');
                Some(NearPair {
                    found_at: parts.next()?.to_owned(),
                    later: parts.next()?.to_owned(),
                    earlier: parts.next()?.to_owned(),
                    distance: item.get("distance")?.as_n().ok()?.parse().ok()?,
                })
            })
            .collect();
        pairs.sort_by(|a, b| b.found_at.cmp(&a.found_at));
        // Two images hashed at once may both find, and list, the pair.
        let mut seen = std::collections::HashSet::new();
        pairs.retain(|p| {
            let key = if p.earlier < p.later {
                (p.earlier.clone(), p.later.clone())
            } else {
                (p.later.clone(), p.earlier.clone())
            };
            seen.insert(key)
        });
        pairs.truncate(limit);
        Ok(pairs)
    }
}

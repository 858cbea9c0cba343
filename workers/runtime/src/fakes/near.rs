//! The near-duplicate index in memory.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use imgflow_imaging::phash::PerceptualHash;

use crate::{
    ports::{probes, NearIndex, NearMatch, NearPair, NEAR_THRESHOLD},
    PortError,
};

/// Hashes by id, looked up through the same band probes as the DynamoDB adapter.
#[derive(Debug, Default, Clone)]
pub struct FakeNearIndex {
    hashes: Arc<Mutex<BTreeMap<String, PerceptualHash>>>,
    pairs: Arc<Mutex<Vec<NearPair>>>,
}

impl NearIndex for FakeNearIndex {
    async fn record(
        &self,
        image_id: &str,
        hash: PerceptualHash,
        at: &str,
    ) -> Result<Vec<NearMatch>, PortError> {
        let mut hashes = self.hashes.lock().unwrap();
        let keys = probes(&hash);
        let mut found: Vec<NearMatch> = hashes
            .iter()
            .filter(|(id, other)| {
                id.as_str() != image_id && keys.iter().any(|(n, v)| other.band(*n) == *v)
            })
            .map(|(id, other)| NearMatch {
                image_id: id.clone(),
                distance: hash.distance(other),
            })
            .filter(|m| m.distance <= NEAR_THRESHOLD)
            .collect();
        found.sort_by_key(|m| m.distance);
        hashes.insert(image_id.to_owned(), hash);
        let mut pairs = self.pairs.lock().unwrap();
        for m in &found {
            if !pairs
                .iter()
                .any(|p| p.later == image_id && p.earlier == m.image_id)
            {
                pairs.push(NearPair {
                    found_at: at.to_owned(),
                    earlier: m.image_id.clone(),
                    later: image_id.to_owned(),
                    distance: m.distance,
                });
            }
        }
        Ok(found)
    }

    async fn near(&self, image_id: &str) -> Result<Vec<NearMatch>, PortError> {
        let pairs = self.pairs.lock().unwrap();
        let mut found: Vec<NearMatch> = pairs
            .iter()
            .filter_map(|p| {
                let other = if p.earlier == image_id {
                    &p.later
                } else if p.later == image_id {
                    &p.earlier
                } else {
                    return None;
                };
                Some(NearMatch {
                    image_id: other.clone(),
                    distance: p.distance,
                })
            })
            .collect();
        found.sort_by_key(|m| m.distance);
        Ok(found)
    }

    async fn recent_pairs(&self, limit: usize) -> Result<Vec<NearPair>, PortError> {
        let pairs = self.pairs.lock().unwrap();
        Ok(pairs.iter().rev().take(limit).cloned().collect())
    }
}

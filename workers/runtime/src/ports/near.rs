//! Near-duplicates: images whose perceptual hashes are within a few bits, found through bands
//! of the hash (see `imgflow_imaging::phash`) without a scan.
use std::future::Future;

pub use imgflow_imaging::phash::{probes, PerceptualHash, BANDS};

use crate::PortError;

/// Hashes within this many of 64 bits are near-duplicates: at 16, recall 0.987 and precision
/// 0.998 on the benchmark's corpus (`scripts/bench near-duplicates`, README).
pub const NEAR_THRESHOLD: u32 = 16;

/// Another image, and how far its hash is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearMatch {
    /// Its image id.
    pub image_id: String,
    /// Hamming distance between the hashes (0–64).
    pub distance: u32,
}

/// Two images found near each other, newest first in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearPair {
    /// When the later of the two was hashed (RFC 3339).
    pub found_at: String,
    /// The earlier image.
    pub earlier: String,
    /// The later one.
    pub later: String,
    /// Their distance.
    pub distance: u32,
}

/// The near-duplicate index.
pub trait NearIndex: Send + Sync + 'static {
    /// Records `image_id`'s hash and links it with every image already recorded within
    /// [`NEAR_THRESHOLD`] bits: those matches. `at` (the image's `received_at`) orders the
    /// pairs it makes. Idempotent (a redelivery writes the same items).
    fn record(
        &self,
        image_id: &str,
        hash: PerceptualHash,
        at: &str,
    ) -> impl Future<Output = Result<Vec<NearMatch>, PortError>> + Send;

    /// The images linked with `image_id`, nearest first.
    fn near(
        &self,
        image_id: &str,
    ) -> impl Future<Output = Result<Vec<NearMatch>, PortError>> + Send;

    /// The most recently linked pairs, newest first, at most `limit`.
    fn recent_pairs(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<NearPair>, PortError>> + Send;
}

//! Exact copies: what names an object's bytes without reading them, and which image first
//! carried those bytes (the original whose labels its copies reuse).
use std::future::Future;

use crate::PortError;

use super::ObjectLocation;

/// A checksum of a whole object as S3 stores it (`HeadObject` with `ChecksumMode=ENABLED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullChecksum {
    /// `crc64nvme`, `crc32`, `crc32c`, `sha1` or `sha256`.
    pub algorithm: String,
    /// The value as S3 answers it (base64).
    pub value: String,
}

/// The algorithm of a SHA-256 computed by imgflow or stored by S3 for the whole object.
pub const SHA256: &str = "sha256";

/// The algorithm of an ETag that is the bytes' MD5 (`ObjectHead::etag_is_md5`).
pub const MD5: &str = "md5";

/// What names an object's bytes: its full-object checksum and its size. Equal keys are a
/// *candidate* copy; only SHA-256 keys are equal bytes by themselves (a CRC, and SHA-1, can be
/// forged to borrow another image's labels).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentKey {
    /// See [`FullChecksum::algorithm`].
    pub algorithm: String,
    /// The checksum's value.
    pub value: String,
    /// The object's size in bytes.
    pub size: u64,
}

impl ContentKey {
    /// A key from S3's checksum of the whole object.
    pub fn from_checksum(checksum: FullChecksum, size: u64) -> Self {
        Self {
            algorithm: checksum.algorithm,
            value: checksum.value,
            size,
        }
    }

    /// A key from an ETag that is the bytes' MD5 (hex): collisions can be made, so equal keys
    /// are confirmed like a CRC's.
    pub fn from_md5(hex: String, size: u64) -> Self {
        Self {
            algorithm: MD5.to_owned(),
            value: hex,
            size,
        }
    }

    /// A key from a SHA-256 imgflow computed (hex).
    pub fn from_sha256(hex: String, size: u64) -> Self {
        Self {
            algorithm: SHA256.to_owned(),
            value: hex,
            size,
        }
    }

    /// Whether equal keys mean equal bytes with no further check.
    pub fn is_collision_resistant(&self) -> bool {
        self.algorithm == SHA256
    }

    /// `<algorithm>:<value>:<size>`, the index's partition.
    pub fn as_string(&self) -> String {
        format!("{}:{}:{}", self.algorithm, self.value, self.size)
    }
}

/// The image whose labels the copies of its bytes reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    /// Its image id.
    pub image_id: String,
    /// Its object, to confirm a copy against.
    pub object: ObjectLocation,
    /// Its ETag: a confirming read of an overwritten key must not compare other bytes.
    pub etag: String,
    /// SHA-256 (hex) of its bytes, once somebody computed it.
    pub sha256: Option<String>,
    /// Until when (RFC 3339) its labelling holds: a copy arriving meanwhile waits for its
    /// labels; after, the copy takes its place (its message failed, or is still queued).
    pub until: String,
}

/// The content index: one entry per content key, naming its original.
pub trait ContentIndex: Send + Sync + 'static {
    /// Registers `candidate` as the original of `content` unless another image is registered;
    /// the registered original either way (`candidate` again, with a renewed `until`, when it
    /// already was: a redelivery of its message).
    fn register(
        &self,
        content: &ContentKey,
        candidate: &Original,
    ) -> impl Future<Output = Result<Original, PortError>> + Send;

    /// `candidate` takes the place of `former` (gone, refused, or past its lease with no
    /// labels) unless another image already did; the registered original after.
    fn take_over(
        &self,
        content: &ContentKey,
        former: &str,
        candidate: &Original,
    ) -> impl Future<Output = Result<Original, PortError>> + Send;

    /// Records the original's SHA-256 once a copy computed it, so later copies read only their
    /// own bytes.
    fn remember_sha256(
        &self,
        content: &ContentKey,
        original: &str,
        sha256: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

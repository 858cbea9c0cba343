//! The image id: one id per stored object version, whichever path delivered the event.
use sha2::{Digest, Sha256};

/// Derives the image id from the object's identity.
///
/// `version` is the S3 `versionId` on versioned buckets and the ETag otherwise, so a redelivered
/// or duplicated event maps to the same id, while a new upload to the same key (new version, or
/// new content and therefore a new ETag) gets a new one. 32 hex characters (128 bits of SHA-256).
pub fn image_id(bucket: &str, key: &str, version: &str) -> String {
    let mut hasher = Sha256::new();
    // Separators that cannot occur in bucket names keep ("a", "bc") and ("ab", "c") apart.
    for part in [bucket, key, version] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// ETags arrive quoted from S3 responses (`"abc"`) and unquoted in event notifications (`abc`);
/// ids must not depend on which path delivered them.
pub fn normalize_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_and_hex() {
        let a = image_id("b", "incoming/cat.png", "etag1");
        assert_eq!(a, image_id("b", "incoming/cat.png", "etag1"));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn id_changes_with_any_part() {
        let base = image_id("b", "k", "v");
        assert_ne!(base, image_id("b2", "k", "v"));
        assert_ne!(base, image_id("b", "k2", "v"));
        assert_ne!(base, image_id("b", "k", "v2"));
        assert_ne!(image_id("ab", "c", "v"), image_id("a", "bc", "v"));
    }

    #[test]
    fn etag_quotes_are_ignored() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
    }
}

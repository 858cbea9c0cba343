//! `imgflow submit FILES|DIRS`: upload to `incoming/`, which starts the pipeline.
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use imgflow_messages::image_id;
use imgflow_runtime::{ports::ObjectStore, PortError};

/// One file to upload and the key it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Local path.
    pub path: PathBuf,
    /// Object key, under the incoming prefix.
    pub key: String,
}

/// One uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Object key.
    pub key: String,
    /// The image id the pipeline will use, from the upload's ETag or version.
    pub image_id: String,
    /// Bytes uploaded.
    pub size: u64,
}

/// A file left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Local path.
    pub path: PathBuf,
    /// Whether the user named it (a failure) rather than it being found in a directory.
    pub named: bool,
}

/// What `collect` found: the files to upload, and those that are not images.
#[derive(Debug, Default)]
pub struct Collected {
    /// To upload.
    pub uploads: Vec<Upload>,
    /// Not PNG or JPEG by their first bytes (a README, a checksum file): not uploaded.
    pub skipped: Vec<Skipped>,
}

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A local file or directory could not be read: the OS says why in the one line.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// Two files would be stored under one key, and one would replace the other.
    #[error("{} and {} would both be stored as {key}; rename one, or submit them in separate runs with different --prefix", first.display(), second.display())]
    KeyClash {
        /// The key.
        key: String,
        /// The first file.
        first: PathBuf,
        /// The second.
        second: PathBuf,
    },
    /// The upload failed.
    #[error("uploading {key}")]
    Upload {
        /// The key.
        key: String,
        /// The cause.
        source: PortError,
    },
}

/// Files under `paths` (directories recursively, hidden entries skipped), with their keys:
/// a file keeps its name, a directory's files keep their path below the directory's name.
/// Files whose first bytes are not a PNG or JPEG are left out and listed.
pub fn collect(paths: &[PathBuf], key_prefix: &str) -> Result<Collected, SubmitError> {
    let mut found = Collected::default();
    for path in paths {
        let read_err = |error| SubmitError::Read {
            path: path.clone(),
            error,
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.metadata().map_err(read_err)?.is_dir() {
            walk(path, &format!("{key_prefix}{name}/"), &mut found)?;
        } else {
            add(
                path.clone(),
                format!("{key_prefix}{name}"),
                true,
                &mut found,
            )?;
        }
    }
    refuse_clashes(&found.uploads)?;
    Ok(found)
}

/// Adds `path` as an upload when its first bytes are an image's, else as skipped.
fn add(path: PathBuf, key: String, named: bool, found: &mut Collected) -> Result<(), SubmitError> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let read = std::fs::File::open(&path)
        .and_then(|mut file| file.read(&mut head))
        .map_err(|error| SubmitError::Read {
            path: path.clone(),
            error,
        })?;
    if imgflow_imaging::probe::sniff(&head[..read]).is_some() {
        found.uploads.push(Upload { path, key });
    } else {
        found.skipped.push(Skipped { path, named });
    }
    Ok(())
}

/// Fails when two files would get the same key (`a/photo.png` and `b/photo.png` both become
/// `incoming/photo.png`): the second upload would replace the first, which would then end
/// `missing`.
fn refuse_clashes(uploads: &[Upload]) -> Result<(), SubmitError> {
    let mut seen: std::collections::HashMap<&str, &Path> = std::collections::HashMap::new();
    for upload in uploads {
        if let Some(first) = seen.insert(&upload.key, &upload.path) {
            return Err(SubmitError::KeyClash {
                key: upload.key.clone(),
                first: first.to_owned(),
                second: upload.path.clone(),
            });
        }
    }
    Ok(())
}

fn walk(dir: &Path, key_prefix: &str, out: &mut Collected) -> Result<(), SubmitError> {
    let read_err = |error| SubmitError::Read {
        path: dir.to_owned(),
        error,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type().map_err(read_err)?.is_dir() {
            walk(&path, &format!("{key_prefix}{name}/"), out)?;
        } else {
            add(path, format!("{key_prefix}{name}"), false, out)?;
        }
    }
    Ok(())
}

/// A content type from the extension, for S3 metadata only: ingest trusts magic bytes.
pub fn content_type_for(key: &str) -> &'static str {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".png") {
        "image/png"
    } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        "image/jpeg"
    } else {
        "application/octet-stream"
    }
}

/// Uploads `uploads` to `bucket`, `concurrency` at a time, calling `progress` after each.
pub async fn submit<S: ObjectStore>(
    store: &S,
    bucket: &str,
    uploads: Vec<Upload>,
    concurrency: usize,
    progress: impl Fn(&Submitted) + Sync,
) -> Result<Vec<Submitted>, SubmitError> {
    let progress = &progress;
    stream::iter(uploads)
        .map(|upload| async move {
            let body = tokio::fs::read(&upload.path)
                .await
                .map_err(|error| SubmitError::Read {
                    path: upload.path.clone(),
                    error,
                })?;
            let size = body.len() as u64;
            let put = store
                .put(
                    bucket,
                    &upload.key,
                    Bytes::from(body),
                    content_type_for(&upload.key),
                )
                .await
                .map_err(|source| SubmitError::Upload {
                    key: upload.key.clone(),
                    source,
                })?;
            let version = put.version_id.as_deref().unwrap_or(&put.etag);
            let submitted = Submitted {
                image_id: image_id(bucket, &upload.key, version),
                key: upload.key,
                size,
            };
            progress(&submitted);
            Ok(submitted)
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR";
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16];

    #[test]
    fn directories_keep_their_structure_under_the_prefix() {
        let dir = std::env::temp_dir().join(format!("imgflow-submit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("photos/2024")).unwrap();
        std::fs::write(dir.join("photos/a b.png"), PNG).unwrap();
        std::fs::write(dir.join("photos/2024/c.jpg"), JPEG).unwrap();
        std::fs::write(dir.join("photos/.hidden"), PNG).unwrap();
        std::fs::write(dir.join("photos/README.md"), b"# my photos").unwrap();
        std::fs::write(dir.join("photos/SHA256SUMS"), b"0123 a b.png").unwrap();
        std::fs::write(dir.join("single.jpeg"), JPEG).unwrap();
        std::fs::write(dir.join("notes.txt"), b"not an image").unwrap();
        let found = collect(
            &[
                dir.join("photos"),
                dir.join("single.jpeg"),
                dir.join("notes.txt"),
            ],
            "incoming/",
        )
        .unwrap();
        let keys: Vec<_> = found.uploads.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "incoming/photos/2024/c.jpg",
                "incoming/photos/a b.png",
                "incoming/single.jpeg"
            ]
        );
        // Not images by their bytes: left out; the one named is a failure, the others not.
        let skipped: Vec<(String, bool)> = found
            .skipped
            .iter()
            .map(|s| {
                (
                    s.path.file_name().unwrap().to_string_lossy().into_owned(),
                    s.named,
                )
            })
            .collect();
        assert_eq!(
            skipped,
            [
                ("README.md".to_owned(), false),
                ("SHA256SUMS".to_owned(), false),
                ("notes.txt".to_owned(), true)
            ]
        );
        let missing = collect(&[dir.join("missing.jpg")], "incoming/")
            .unwrap_err()
            .to_string();
        assert!(
            missing.ends_with("missing.jpg: No such file or directory (os error 2)"),
            "{missing}"
        );
        std::fs::remove_dir_all(dir).unwrap();
        assert_eq!(content_type_for("x.JPG"), "image/jpeg");
    }

    #[test]
    fn two_files_with_one_name_are_refused_before_any_upload() {
        let dir = std::env::temp_dir().join(format!("imgflow-clash-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("a/photo.png"), PNG).unwrap();
        std::fs::write(dir.join("b/photo.png"), PNG).unwrap();
        let error = collect(
            &[dir.join("a/photo.png"), dir.join("b/photo.png")],
            "incoming/",
        )
        .unwrap_err()
        .to_string();
        std::fs::remove_dir_all(dir).unwrap();
        assert!(
            error.contains("would both be stored as incoming/photo.png"),
            "{error}"
        );
    }
}

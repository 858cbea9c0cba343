//! S3 Inventory reports, for buckets too large to list: the `manifest.json` of one report
//! and its gzip-compressed CSV data files
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html>).
//!
//! A data file is streamed: read in [`CHUNK_BYTES`] ranged GETs, decompressed on a blocking
//! thread, split into lines of at most [`MAX_LINE_BYTES`], and handed over row by row through
//! bounded channels, so memory stays a few chunks and a page of rows whatever the file's size,
//! and a small gzip that inflates to one huge line is refused at the line limit.
use std::io::{BufRead, BufReader, Read};

use bytes::Bytes;
use imgflow_aws::s3::{ListedObject, S3Store};
use imgflow_runtime::{
    ports::{ObjectLocation, ObjectStore},
    PortError, PortErrorKind,
};
use serde::Deserialize;
use tokio::sync::mpsc;

/// Compressed bytes per ranged GET of a data file.
pub const CHUNK_BYTES: u64 = 4 * 1024 * 1024;
/// Longest CSV row accepted: a row is a bucket, a URL-encoded key (at most 1,024 bytes
/// before encoding, so at most 3 KiB after), a version id and a few short fields.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Rows decoded ahead of the consumer.
const ROWS_AHEAD: usize = 256;

/// What backfill needs from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The bucket the report is about.
    pub source_bucket: String,
    /// Where its data files are (a bucket name, from the manifest's ARN).
    pub destination_bucket: String,
    /// Column names of the CSV rows.
    pub schema: Vec<String>,
    /// The data files: (key in the destination bucket, compressed size).
    pub files: Vec<(String, u64)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    source_bucket: String,
    destination_bucket: String,
    file_format: String,
    file_schema: String,
    files: Vec<RawFile>,
}

#[derive(Deserialize)]
struct RawFile {
    key: String,
    #[serde(default)]
    size: u64,
}

/// Reads a `manifest.json`, refusing formats other than CSV and reports of another bucket.
pub fn parse_manifest(text: &str, bucket: &str) -> Result<Manifest, String> {
    let raw: RawManifest =
        serde_json::from_str(text).map_err(|e| format!("not an S3 Inventory manifest: {e}"))?;
    if raw.file_format != "CSV" {
        return Err(format!(
            "inventory format {} is not supported (CSV is)",
            raw.file_format
        ));
    }
    if raw.source_bucket != bucket {
        return Err(format!(
            "the inventory is of bucket {}, not {bucket}",
            raw.source_bucket
        ));
    }
    let schema: Vec<String> = raw
        .file_schema
        .split(',')
        .map(|c| c.trim().to_owned())
        .collect();
    if !["Key", "Size", "ETag"]
        .iter()
        .all(|c| schema.iter().any(|s| s == c))
    {
        return Err(format!(
            "the inventory must include Key, Size and ETag (it has {})",
            raw.file_schema
        ));
    }
    Ok(Manifest {
        source_bucket: raw.source_bucket,
        destination_bucket: raw
            .destination_bucket
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_owned(),
        schema,
        files: raw.files.into_iter().map(|f| (f.key, f.size)).collect(),
    })
}

/// One CSV row as a current object, or `None` for a noncurrent version, a delete marker or
/// a row that does not parse. Inventory keys are URL-encoded.
pub fn parse_row(line: &str, schema: &[String]) -> Option<ListedObject> {
    let fields = split_csv(line)?;
    let field = |name: &str| {
        schema
            .iter()
            .position(|c| c == name)
            .and_then(|i| fields.get(i))
            .map(String::as_str)
    };
    if field("IsLatest") == Some("false") || field("IsDeleteMarker") == Some("true") {
        return None;
    }
    let key = imgflow_messages::s3_event::decode_key(field("Key")?).ok()?;
    Some(ListedObject {
        key,
        size: field("Size")?.parse().ok()?,
        etag: field("ETag")?.to_owned(),
        version_id: field("VersionId")
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_owned),
        last_modified: field("LastModifiedDate").unwrap_or_default().to_owned(),
        // An inventory report's `ChecksumAlgorithm` field, when it was asked for.
        checksum_algorithm: field("ChecksumAlgorithm")
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
    })
}

/// Splits a CSV line whose fields may be double-quoted (`""` is a quote).
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => break,
                    c => field.push(c),
                }
            }
        }
        for c in chars.by_ref() {
            if c == ',' {
                break;
            }
            field.push(c);
        }
        fields.push(field);
        if chars.peek().is_none() {
            // A trailing comma leaves one more empty field.
            if line.ends_with(',') {
                fields.push(String::new());
            }
            return Some(fields);
        }
    }
}

/// The current objects of one data file, streamed: each item is a row's object, or the
/// error that ended the file.
pub fn read_file(
    s3: &S3Store,
    manifest: &Manifest,
    (key, _): &(String, u64),
) -> mpsc::Receiver<Result<ListedObject, PortError>> {
    let location = ObjectLocation {
        bucket: manifest.destination_bucket.clone(),
        key: key.clone(),
        version_id: None,
    };
    let what = format!("reading inventory data file s3://{}/{key}", location.bucket);
    let (chunks_tx, chunks_rx) = mpsc::channel::<Result<Bytes, PortError>>(2);
    let rows = decode_rows(chunks_rx, manifest.schema.clone(), what);
    let s3 = s3.clone();
    tokio::spawn(async move {
        let size = match s3.head(&location).await {
            Ok(head) => head.size,
            Err(e) => return drop(chunks_tx.send(Err(e)).await),
        };
        let mut offset = 0;
        while offset < size {
            let last = (offset + CHUNK_BYTES).min(size) - 1;
            let chunk = s3.get_range(&location, offset, last).await;
            let failed = chunk.is_err();
            // The decoder stopped (an error, or the consumer went away): stop reading.
            if chunks_tx.send(chunk).await.is_err() || failed {
                return;
            }
            offset = last + 1;
        }
    });
    rows
}

/// Decompresses `chunks` (a gzip file in order) on a blocking thread and sends the current
/// objects of its rows, a bounded number ahead of the consumer.
pub fn decode_rows(
    chunks: mpsc::Receiver<Result<Bytes, PortError>>,
    schema: Vec<String>,
    what: String,
) -> mpsc::Receiver<Result<ListedObject, PortError>> {
    let (rows_tx, rows_rx) = mpsc::channel(ROWS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let failure = |detail: String| PortError::new(PortErrorKind::Invalid, what.clone(), detail);
        let source = ChunkReader {
            chunks,
            current: Bytes::new(),
            failed: None,
        };
        let mut lines = BufReader::new(flate2::read::GzDecoder::new(source));
        let mut line = Vec::new();
        loop {
            // The consumer stopped (backfill ended early): read and decompress no further,
            // even through rows that are never sent (noncurrent versions, delete markers).
            if rows_tx.is_closed() {
                return;
            }
            line.clear();
            let read = (&mut lines)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line);
            let error = match read {
                Ok(0) => return,
                Ok(_) if line.len() > MAX_LINE_BYTES && !line.ends_with(b"\n") => {
                    Some(failure(format!(
                        "a row is longer than {MAX_LINE_BYTES} bytes; not an S3 Inventory CSV file"
                    )))
                }
                Ok(_) => None,
                Err(e) => Some(match lines.get_mut().get_mut().failed.take() {
                    Some(source_error) => source_error,
                    None => failure(e.to_string()),
                }),
            };
            if let Some(error) = error {
                let _ = rows_tx.blocking_send(Err(error));
                return;
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(object) = parse_row(text.trim_end_matches(['\r', '\n']), &schema) {
                if rows_tx.blocking_send(Ok(object)).is_err() {
                    return;
                }
            }
        }
    });
    rows_rx
}

/// The compressed file as a `Read`, from chunks received one at a time.
struct ChunkReader {
    chunks: mpsc::Receiver<Result<Bytes, PortError>>,
    current: Bytes,
    /// The read failure that ended the file, to report as itself.
    failed: Option<PortError>,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    let message = e.to_string();
                    self.failed = Some(e);
                    return Err(std::io::Error::other(message));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{
        "sourceBucket": "imgflow-images",
        "destinationBucket": "arn:aws:s3:::inventory-reports",
        "version": "2016-11-30",
        "creationTimestamp": "1514944800000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag",
        "files": [{"key": "inv/data/1.csv.gz", "size": 2048, "MD5checksum": "f1"}]
    }"#;

    #[test]
    fn a_manifest_names_its_files_and_columns() {
        let m = parse_manifest(MANIFEST, "imgflow-images").unwrap();
        assert_eq!(m.destination_bucket, "inventory-reports");
        assert_eq!(m.files, vec![("inv/data/1.csv.gz".to_owned(), 2048)]);
        assert_eq!(m.schema[1], "Key");
        assert!(parse_manifest(MANIFEST, "other")
            .unwrap_err()
            .contains("not other"));
        let parquet = MANIFEST.replace("\"CSV\"", "\"Parquet\"");
        assert!(parse_manifest(&parquet, "imgflow-images").is_err());
    }

    #[test]
    fn rows_are_current_objects_with_decoded_keys() {
        let m = parse_manifest(MANIFEST, "imgflow-images").unwrap();
        let row = r#""imgflow-images","incoming/red+flower%2C%22x%22.png","v1","true","false","1234","2026-11-01T00:00:00.000Z","abc""#;
        let o = parse_row(row, &m.schema).unwrap();
        assert_eq!(o.key, "incoming/red flower,\"x\".png");
        assert_eq!((o.size, o.etag.as_str()), (1234, "abc"));
        assert_eq!(o.version_id.as_deref(), Some("v1"));
        let old = row.replace("\"true\"", "\"false\"");
        assert_eq!(parse_row(&old, &m.schema), None, "noncurrent version");
        let quoted = r#""b","a ""b"".png","","true","false","1","t","e""#;
        assert_eq!(parse_row(quoted, &m.schema).unwrap().key, "a \"b\".png");
        assert_eq!(parse_row("garbage", &m.schema), None);
    }

    /// A gzip of `text`, cut into chunks of `size` bytes as ranged GETs would.
    fn chunks(text: &[u8], size: usize) -> mpsc::Receiver<Result<Bytes, PortError>> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text).unwrap();
        let gzip = encoder.finish().unwrap();
        let (tx, rx) = mpsc::channel(gzip.len() / size + 2);
        for chunk in gzip.chunks(size) {
            tx.try_send(Ok(Bytes::copy_from_slice(chunk))).unwrap();
        }
        rx
    }

    async fn drain(
        mut rows: mpsc::Receiver<Result<ListedObject, PortError>>,
    ) -> (Vec<ListedObject>, Option<PortError>) {
        let (mut objects, mut error) = (Vec::new(), None);
        while let Some(row) = rows.recv().await {
            match row {
                Ok(object) => objects.push(object),
                Err(e) => error = Some(e),
            }
        }
        (objects, error)
    }

    #[tokio::test]
    async fn rows_stream_across_chunk_boundaries() {
        let m = parse_manifest(MANIFEST, "imgflow-images").unwrap();
        let text: String = (0..500)
            .map(|n| format!("\"imgflow-images\",\"incoming/{n}.png\",\"\",\"true\",\"false\",\"{n}\",\"t\",\"e{n}\"\r\n"))
            .collect();
        for size in [1, 7, 4096] {
            let rows = decode_rows(chunks(text.as_bytes(), size), m.schema.clone(), "f".into());
            let (objects, error) = drain(rows).await;
            assert!(error.is_none(), "{error:?}");
            assert_eq!(objects.len(), 500);
            assert_eq!(objects[499].key, "incoming/499.png");
            assert_eq!(objects[499].etag, "e499");
        }
    }

    /// A few kilobytes that inflate to 64 MB without a newline: refused at the line limit,
    /// having read one line's worth.
    #[tokio::test]
    async fn a_gzip_that_inflates_to_one_huge_line_is_refused() {
        let m = parse_manifest(MANIFEST, "imgflow-images").unwrap();
        let bomb = vec![b'a'; 64 * 1024 * 1024];
        let rows = decode_rows(chunks(&bomb, 64 * 1024), m.schema, "f".into());
        let (objects, error) = drain(rows).await;
        assert!(objects.is_empty());
        let error = error.expect("refused").to_string();
        assert!(error.contains("longer than 16384 bytes"), "{error}");
    }

    /// A read failure ends the file as itself, not as a decompression error.
    #[tokio::test]
    async fn a_failed_read_ends_the_file_with_its_cause() {
        let m = parse_manifest(MANIFEST, "imgflow-images").unwrap();
        let (tx, rx) = mpsc::channel(1);
        tx.try_send(Err(PortError::new(
            PortErrorKind::Throttled,
            "s3:GetObject",
            "SlowDown",
        )))
        .unwrap();
        let (_, error) = drain(decode_rows(rx, m.schema, "f".into())).await;
        assert_eq!(error.unwrap().kind, PortErrorKind::Throttled);
    }
}

//! S3 Inventory reports, for buckets too large to list: the `manifest.json` of one report
//! and its gzip-compressed CSV data files
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html>).
//!
//! A data file is read whole (at most [`MAX_DATA_FILE_BYTES`] compressed) and decompressed as
//! a stream, row by row, so a file that inflates past its size costs time, not memory.
use std::io::{BufRead, BufReader};

use imgflow_aws::s3::{ListedObject, S3Store};
use imgflow_runtime::{
    ports::{ObjectLocation, ObjectStore},
    PortError, PortErrorKind,
};
use serde::Deserialize;

/// Largest compressed data file read.
pub const MAX_DATA_FILE_BYTES: u64 = 512 * 1024 * 1024;

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
    if let Some((key, size)) = raw
        .files
        .iter()
        .map(|f| (&f.key, f.size))
        .find(|(_, size)| *size > MAX_DATA_FILE_BYTES)
    {
        return Err(format!(
            "data file {key} is {size} bytes, over the {MAX_DATA_FILE_BYTES} read at once"
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

/// The current objects of one data file.
pub async fn read_file(
    s3: &S3Store,
    manifest: &Manifest,
    (key, _): &(String, u64),
) -> Result<Vec<ListedObject>, PortError> {
    let location = ObjectLocation {
        bucket: manifest.destination_bucket.clone(),
        key: key.clone(),
        version_id: None,
    };
    let bytes = s3.get(&location).await?;
    let what = format!("reading inventory data file s3://{}/{key}", location.bucket);
    if bytes.len() as u64 > MAX_DATA_FILE_BYTES {
        return Err(PortError::new(
            PortErrorKind::Invalid,
            what,
            "over the size read at once",
        ));
    }
    let mut objects = Vec::new();
    for line in BufReader::new(flate2::read::GzDecoder::new(&bytes[..])).lines() {
        let line =
            line.map_err(|e| PortError::new(PortErrorKind::Invalid, what.clone(), e.to_string()))?;
        objects.extend(parse_row(&line, &manifest.schema));
    }
    Ok(objects)
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
        let huge = MANIFEST.replace("2048", "99999999999");
        assert!(parse_manifest(&huge, "imgflow-images")
            .unwrap_err()
            .contains("over"));
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
}

//! The `ObjectStore` port on S3.
use aws_sdk_s3::{
    operation::head_object::HeadObjectOutput,
    primitives::ByteStream,
    types::{ChecksumMode, ChecksumType},
    Client,
};
use bytes::Bytes;
use imgflow_messages::id::normalize_etag;

use super::ModeledKind;
use imgflow_runtime::{
    ports::{FullChecksum, ObjectHead, ObjectLocation, ObjectStore, PutResult},
    PortError, PortErrorKind,
};

/// The image bucket(s).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
}

impl S3Store {
    /// A store on `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// Its version id, listing a versioned bucket.
    pub version_id: Option<String>,
    /// When it was last written (RFC 3339).
    pub last_modified: String,
    /// The algorithm of the checksum S3 holds for it (`CRC32`, `CRC64NVME`, ...), if any:
    /// copies are found by checksum, so two objects are copies only with the same one.
    pub checksum_algorithm: Option<String>,
}

/// One page of a listing, in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListPage {
    /// The objects (current versions only).
    pub objects: Vec<ListedObject>,
    /// When more pages follow: the key to continue after (the last one listed, which a
    /// version listing may not have returned as an object).
    pub next_after: Option<String>,
}

impl S3Store {
    /// Up to `max_keys` (at most 1,000) objects under `prefix` whose keys sort after `after`,
    /// in key order: the current versions of a ListObjectVersions page, which on an
    /// unversioned bucket are its objects (version id "null", so ids come from ETags) and on a
    /// versioned one carry the version ids that ids come from there.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        max_keys: i32,
    ) -> Result<ListPage, PortError> {
        let output = self
            .client
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(after.map(str::to_owned))
            .max_keys(max_keys)
            .send()
            .await
            .map_err(|e| s3_error(format!("s3:ListObjectVersions s3://{bucket}/{prefix}"), e))?;
        let more = output.is_truncated().unwrap_or(false);
        let versions = output.versions.unwrap_or_default();
        let last_marker = output
            .delete_markers
            .unwrap_or_default()
            .last()
            .and_then(|m| m.key.clone());
        let next_after = versions
            .last()
            .and_then(|v| v.key.clone())
            .into_iter()
            .chain(last_marker)
            .max()
            .filter(|_| more);
        let objects = versions
            .into_iter()
            .filter(|v| v.is_latest().unwrap_or(true))
            .map(|v| ListedObject {
                checksum_algorithm: v
                    .checksum_algorithm()
                    .first()
                    .map(|a| a.as_str().to_owned()),
                last_modified: v
                    .last_modified()
                    .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok())
                    .unwrap_or_default(),
                etag: etag(v.e_tag()),
                size: v.size().unwrap_or(0).max(0) as u64,
                version_id: version(v.version_id),
                key: v.key.unwrap_or_default(),
            })
            .collect();
        Ok(ListPage {
            objects,
            next_after,
        })
    }
}

/// The checksum S3 holds of the whole object, if any. A multipart upload's checksum may be a
/// checksum of its parts' checksums (`ChecksumType` `COMPOSITE`, a value ending `-<parts>`),
/// which depends on the part size: no use for naming content. Servers that answer no type (the
/// emulator) are taken at their value's word.
fn full_checksum(output: &HeadObjectOutput) -> Option<FullChecksum> {
    if output
        .checksum_type()
        .is_some_and(|t| *t != ChecksumType::FullObject)
    {
        return None;
    }
    [
        ("crc64nvme", output.checksum_crc64_nvme()),
        ("sha256", output.checksum_sha256()),
        ("crc32c", output.checksum_crc32_c()),
        ("crc32", output.checksum_crc32()),
        ("sha1", output.checksum_sha1()),
    ]
    .into_iter()
    .find_map(|(algorithm, value)| {
        let value = value.filter(|v| !v.is_empty() && !v.contains('-'))?;
        // S3's SHA-256 in hex, the form imgflow computes for objects without a checksum: the
        // same bytes get the same key either way.
        let value = match algorithm {
            "sha256" => hex_of_base64(value)?,
            _ => value.to_owned(),
        };
        Some(FullChecksum {
            algorithm: algorithm.to_owned(),
            value,
        })
    })
}

fn hex_of_base64(value: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// ETag without quotes.
fn etag(raw: Option<&str>) -> String {
    raw.map(normalize_etag).unwrap_or_default().to_owned()
}

/// Unversioned buckets answer the version id "null".
fn version(raw: Option<String>) -> Option<String> {
    raw.filter(|v| v != "null")
}

/// A read refused with 403. On AWS this is also S3's answer for a key that does not exist
/// when the caller lacks `s3:ListBucket` (it must not learn which keys exist), so the message
/// names both causes; the templates grant `s3:ListBucket` for the incoming prefix so that a
/// deleted object reads as 404 (`missing`), and a 403 is then a real permission error.
fn read_error<E>(
    operation: String,
    error: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> PortError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    aws_sdk_s3::Error: From<aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
{
    let forbidden = error
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == 403);
    let mut e = s3_error(operation, error);
    if forbidden {
        e.message = format!(
            "access denied: grant s3:GetObject on the key and s3:ListBucket on the bucket for its \
             prefix (without s3:ListBucket S3 answers 403 for a missing key); {}",
            e.message
        );
    }
    e
}

fn describe(op: &str, o: &ObjectLocation) -> String {
    match &o.version_id {
        Some(v) => format!("s3:{op} s3://{}/{}?versionId={v}", o.bucket, o.key),
        None => format!("s3:{op} s3://{}/{}", o.bucket, o.key),
    }
}

impl S3Store {
    /// A GetObject of `range` (or all): the bytes, and what a HEAD would answer (the size from
    /// `Content-Range` when ranged). `None` when the range is not satisfiable: S3's 416 for an
    /// empty object, which has no byte 0.
    async fn fetch(
        &self,
        object: &ObjectLocation,
        range: Option<String>,
    ) -> Result<Option<(ObjectHead, Bytes)>, PortError> {
        let operation = describe("GetObject", object);
        let result = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .set_range(range)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Ok(None)
            }
            Err(e) if forbidden(&e) => return Err(self.refused(operation, object, e).await),
            Err(e) => return Err(read_error(operation, e)),
        };
        let (etag, version_id) = (etag(output.e_tag()), version(output.version_id.clone()));
        let etag_is_md5 = etag_is_md5(
            &etag,
            output.server_side_encryption(),
            output.sse_customer_algorithm(),
        );
        // `bytes 0-65535/1234567`: the total after the slash.
        let total = output
            .content_range()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|t| t.parse::<u64>().ok());
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| PortError::new(PortErrorKind::Retryable, operation, e.to_string()))?
            .into_bytes();
        let head = ObjectHead {
            // No Content-Range: the whole object came back.
            size: total.unwrap_or(body.len() as u64),
            etag,
            version_id,
            checksum: None,
            etag_is_md5,
        };
        Ok(Some((head, body)))
    }
}

impl S3Store {
    /// A read answered 403. S3 answers 403, not 404, for a key that does not exist when the
    /// caller may not list it, and the stacks grant `s3:ListBucket` only under the incoming
    /// prefix, conditioned on `s3:prefix`, which a GetObject does not carry. A ListObjectsV2
    /// with the key as prefix (which that grant allows) tells the two apart: no such key is
    /// `NotFound` (the image ends `missing`), a key that is there was really refused.
    async fn refused<E>(
        &self,
        operation: String,
        object: &ObjectLocation,
        error: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> PortError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        aws_sdk_s3::Error:
            From<aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
    {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&object.bucket)
            .prefix(&object.key)
            .max_keys(1)
            .send()
            .await;
        match listed {
            // The key itself sorts first among the keys it prefixes.
            Ok(page) if !page.contents().iter().any(|o| o.key() == Some(&object.key)) => {
                PortError::new(
                    PortErrorKind::NotFound,
                    operation,
                    "no such key (S3 answered 403; a listing of the key found nothing)",
                )
            }
            _ => read_error(operation, error),
        }
    }
}

/// Whether S3's ETag is the MD5 of the bytes: a single-part upload (a multipart ETag ends in
/// `-<parts>`) stored unencrypted or under SSE-S3. Under SSE-KMS, DSSE-KMS and SSE-C it is not
/// derived from the bytes alone.
fn etag_is_md5(
    etag: &str,
    encryption: Option<&aws_sdk_s3::types::ServerSideEncryption>,
    customer_key_algorithm: Option<&str>,
) -> bool {
    use aws_sdk_s3::types::ServerSideEncryption;
    etag.len() == 32
        && etag.bytes().all(|b| b.is_ascii_hexdigit())
        && customer_key_algorithm.is_none()
        && matches!(encryption, None | Some(ServerSideEncryption::Aes256))
}

fn forbidden<E>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    error
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == 403)
}

impl ObjectStore for S3Store {
    async fn head(&self, object: &ObjectLocation) -> Result<ObjectHead, PortError> {
        let operation = describe("HeadObject", object);
        let output = match self
            .client
            .head_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if forbidden(&e) => return Err(self.refused(operation, object, e).await),
            Err(e) => return Err(read_error(operation, e)),
        };
        let checksum = full_checksum(&output);
        let etag = etag(output.e_tag.as_deref());
        Ok(ObjectHead {
            size: output.content_length.unwrap_or(0).max(0) as u64,
            etag_is_md5: etag_is_md5(
                &etag,
                output.server_side_encryption(),
                output.sse_customer_algorithm(),
            ),
            etag,
            version_id: version(output.version_id),
            checksum,
        })
    }

    async fn get_start(
        &self,
        object: &ObjectLocation,
        last: u64,
    ) -> Result<(ObjectHead, Bytes), PortError> {
        match self.fetch(object, Some(format!("bytes=0-{last}"))).await? {
            Some(start) => Ok(start),
            None => Ok((self.head(object).await?, Bytes::new())),
        }
    }

    async fn get_range(
        &self,
        object: &ObjectLocation,
        first: u64,
        last: u64,
    ) -> Result<Bytes, PortError> {
        let fetched = self
            .fetch(object, Some(format!("bytes={first}-{last}")))
            .await?;
        Ok(fetched.map(|(_, bytes)| bytes).unwrap_or_default())
    }

    async fn get(&self, object: &ObjectLocation) -> Result<Bytes, PortError> {
        let fetched = self.fetch(object, None).await?;
        Ok(fetched.map(|(_, bytes)| bytes).unwrap_or_default())
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<PutResult, PortError> {
        let output = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error(format!("s3:PutObject s3://{bucket}/{key}"), e))?;
        Ok(PutResult {
            etag: etag(output.e_tag.as_deref()),
            version_id: version(output.version_id),
        })
    }
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PortError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error(format!("s3:DeleteObject s3://{bucket}/{key}"), e))?;
        Ok(())
    }
}

/// S3's modeled errors.
impl ModeledKind for aws_sdk_s3::Error {
    fn modeled_kind(&self) -> Option<PortErrorKind> {
        use aws_sdk_s3::Error as E;
        Some(match self {
            E::NoSuchKey(_) | E::NoSuchBucket(_) | E::NotFound(_) => PortErrorKind::NotFound,
            E::AccessDenied(_) => PortErrorKind::Fatal,
            _ => return None,
        })
    }
}

service_error_fn!(s3_error, aws_sdk_s3);

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn only_a_single_part_etag_stored_unencrypted_or_under_sse_s3_is_an_md5() {
        use aws_sdk_s3::types::ServerSideEncryption as Sse;
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        assert!(etag_is_md5(md5, None, None));
        assert!(etag_is_md5(md5, Some(&Sse::Aes256), None));
        assert!(!etag_is_md5(md5, Some(&Sse::AwsKms), None));
        assert!(!etag_is_md5(md5, Some(&Sse::AwsKmsDsse), None));
        assert!(
            !etag_is_md5(md5, Some(&Sse::Aes256), Some("AES256")),
            "SSE-C"
        );
        assert!(
            !etag_is_md5("9e107d9d372bb6826bd81d3542a419d6-3", None, None),
            "multipart"
        );
        assert!(!etag_is_md5("", None, None));
    }

    /// A loopback stand-in for S3 answering every read with `status`, as AWS does for a
    /// missing key: 404 with `s3:ListBucket`, 403 without it; and a listing of the key with
    /// it (`listed`) or without it.
    async fn head_against(status: StatusCode) -> PortError {
        read_against(status, true, false).await
    }

    async fn read_against(status: StatusCode, listed: bool, get: bool) -> PortError {
        let listing = move |uri: axum::http::Uri| async move {
            if !uri.query().unwrap_or("").contains("list-type=2") {
                return axum::response::Response::builder()
                    .status(status)
                    .body(axum::body::Body::empty())
                    .unwrap();
            }
            let contents = match listed {
                true => "<Contents><Key>incoming/gone.png</Key><Size>1</Size></Contents>",
                false => "",
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult \
                 xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>\
                 <Prefix>incoming/gone.png</Prefix><KeyCount>{}</KeyCount><MaxKeys>1</MaxKeys>\
                 <IsTruncated>false</IsTruncated>{contents}</ListBucketResult>",
                usize::from(listed)
            );
            axum::response::Response::builder()
                .status(200)
                .header("content-type", "application/xml")
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        let app = axum::Router::new().fallback(listing);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let clients = super::super::clients_at(&endpoint, std::time::Duration::from_secs(10)).await;
        let object = ObjectLocation {
            bucket: "b".into(),
            key: "incoming/gone.png".into(),
            version_id: None,
        };
        let store = S3Store::new(clients.s3);
        match get {
            true => store.get_start(&object, 100).await.unwrap_err(),
            false => store.head(&object).await.unwrap_err(),
        }
    }

    /// Under the stack's grant (`s3:ListBucket` conditioned on the prefix) a missing key is a
    /// 403 on AWS: the listing tells it from a real refusal, for ranged GETs and HEADs alike.
    #[tokio::test]
    async fn a_403_for_a_key_the_listing_does_not_show_is_not_found() {
        for get in [true, false] {
            let missing = read_against(StatusCode::FORBIDDEN, false, get).await;
            assert_eq!(missing.kind, PortErrorKind::NotFound, "{missing}");
            let denied = read_against(StatusCode::FORBIDDEN, true, get).await;
            assert_eq!(denied.kind, PortErrorKind::Fatal, "{denied}");
        }
    }

    #[tokio::test]
    async fn a_missing_key_is_not_found_and_a_refusal_names_the_grants_it_needs() {
        let missing = head_against(StatusCode::NOT_FOUND).await;
        assert_eq!(missing.kind, PortErrorKind::NotFound, "{missing}");
        let denied = head_against(StatusCode::FORBIDDEN).await;
        assert_eq!(denied.kind, PortErrorKind::Fatal, "{denied}");
        assert!(denied.message.contains("s3:ListBucket"), "{denied}");
    }

    #[test]
    fn only_a_checksum_of_the_whole_object_names_its_bytes() {
        use aws_sdk_s3::operation::head_object::HeadObjectOutput;
        let crc = HeadObjectOutput::builder()
            .checksum_crc64_nvme("AAAAAAAAAAA=")
            .checksum_type(ChecksumType::FullObject)
            .build();
        assert_eq!(
            full_checksum(&crc),
            Some(FullChecksum {
                algorithm: "crc64nvme".into(),
                value: "AAAAAAAAAAA=".into()
            })
        );
        // A multipart upload's checksum of its parts' checksums depends on the part size.
        let composite = HeadObjectOutput::builder()
            .checksum_sha256("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=-3")
            .checksum_type(ChecksumType::Composite)
            .build();
        assert_eq!(full_checksum(&composite), None);
        // The emulator answers no type; a part count in the value still tells.
        let parts = HeadObjectOutput::builder()
            .checksum_crc32("DUoRhQ==-2")
            .build();
        assert_eq!(full_checksum(&parts), None);
        // S3's SHA-256 reads as the hex digest imgflow computes itself.
        let sha = HeadObjectOutput::builder()
            .checksum_sha256("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=")
            .build();
        assert_eq!(
            full_checksum(&sha).unwrap().value,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
            "sha256(\"hello world\")"
        );
    }
}

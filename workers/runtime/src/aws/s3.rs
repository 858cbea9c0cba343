//! The `ObjectStore` port on S3.
use aws_sdk_s3::{primitives::ByteStream, Client};
use bytes::Bytes;
use imgflow_messages::id::normalize_etag;

use super::port_error;
use crate::{
    ports::{ObjectHead, ObjectLocation, ObjectStore, PutResult},
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

/// ETag without quotes.
fn etag(raw: Option<&str>) -> String {
    raw.map(normalize_etag).unwrap_or_default().to_owned()
}

/// Unversioned buckets answer the version id "null".
fn version(raw: Option<String>) -> Option<String> {
    raw.filter(|v| v != "null")
}

fn describe(op: &str, o: &ObjectLocation) -> String {
    match &o.version_id {
        Some(v) => format!("s3:{op} s3://{}/{}?versionId={v}", o.bucket, o.key),
        None => format!("s3:{op} s3://{}/{}", o.bucket, o.key),
    }
}

impl S3Store {
    async fn fetch(
        &self,
        object: &ObjectLocation,
        range: Option<String>,
    ) -> Result<Bytes, PortError> {
        let operation = describe("GetObject", object);
        let output = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .set_range(range)
            .send()
            .await
            .map_err(|e| port_error(operation.clone(), e))?;
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| PortError::new(PortErrorKind::Retryable, operation, e.to_string()))?;
        Ok(body.into_bytes())
    }
}

impl ObjectStore for S3Store {
    async fn head(&self, object: &ObjectLocation) -> Result<ObjectHead, PortError> {
        let output = self
            .client
            .head_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .send()
            .await
            .map_err(|e| port_error(describe("HeadObject", object), e))?;
        Ok(ObjectHead {
            size: output.content_length.unwrap_or(0).max(0) as u64,
            etag: etag(output.e_tag.as_deref()),
            version_id: version(output.version_id),
        })
    }

    async fn get_range(
        &self,
        object: &ObjectLocation,
        first: u64,
        last: u64,
    ) -> Result<Bytes, PortError> {
        self.fetch(object, Some(format!("bytes={first}-{last}")))
            .await
    }

    async fn get(&self, object: &ObjectLocation) -> Result<Bytes, PortError> {
        self.fetch(object, None).await
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
            .map_err(|e| port_error(format!("s3:PutObject s3://{bucket}/{key}"), e))?;
        Ok(PutResult {
            etag: etag(output.e_tag.as_deref()),
            version_id: version(output.version_id),
        })
    }
}

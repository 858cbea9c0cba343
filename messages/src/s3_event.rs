//! S3 event notifications as they reach the ingest queue.
//!
//! Three envelopes carry the same facts:
//! - direct S3 → SQS: `{"Records": [...]}`
//!   <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>
//! - S3 → SNS → SQS without raw delivery: an SNS notification whose `Message` is the JSON above
//!   <https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html>
//! - S3 → EventBridge → SQS: `{"detail-type": "Object Created", "source": "aws.s3", "detail": {...}}`
//!   <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>
//!
//! plus the `s3:TestEvent` S3 sends when a notification is configured.
use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// What one queue message said.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// `s3:TestEvent`: S3 checking that it may send; nothing to process.
    TestEvent,
    /// One or more object events (direct notifications may batch records).
    Objects(Vec<ObjectEvent>),
}

/// One object event, envelope-independent, with the key decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    /// `ObjectCreated:Put`, `ObjectRemoved:Delete`, ... (EventBridge names are mapped to these).
    pub event_name: String,
    /// When S3 recorded the event (RFC 3339).
    pub event_time: String,
    /// Bucket name.
    pub bucket: String,
    /// Object key, decoded: the exact key to pass to S3.
    pub key: String,
    /// Object size in bytes when the event carries it.
    pub size: Option<u64>,
    /// ETag without quotes, when the event carries it.
    pub etag: Option<String>,
    /// Version id on versioned buckets.
    pub version_id: Option<String>,
}

impl ObjectEvent {
    /// Whether the event reports a new object (any `ObjectCreated:*`).
    pub fn is_object_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
    }
}

/// Why a message body is not an S3 notification imgflow understands. Such a message can never
/// succeed, so the consumer dead-letters it.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("body is not an S3 event notification")]
    Shape(#[from] serde_json::Error),
    /// Valid JSON, but no envelope we know.
    #[error("body is JSON but not an S3 notification, SNS notification or EventBridge event")]
    UnknownEnvelope,
    /// A key whose `%XX` escapes do not decode to UTF-8.
    #[error("object key {raw:?} does not decode to UTF-8")]
    KeyEncoding {
        /// The key as it arrived.
        raw: String,
    },
}

/// Parses one queue message body, whichever envelope carried it.
pub fn parse_notification(body: &str) -> Result<Notification, ParseError> {
    let value: serde_json::Value = serde_json::from_str(body)?;
    parse_value(value, 0)
}

fn parse_value(value: serde_json::Value, depth: u8) -> Result<Notification, ParseError> {
    if value.get("Records").is_some() {
        let direct: DirectNotification = serde_json::from_value(value)?;
        return direct
            .records
            .into_iter()
            .map(ObjectEvent::try_from)
            .collect::<Result<_, _>>()
            .map(Notification::Objects);
    }
    if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(Notification::TestEvent);
    }
    // SNS without raw delivery: the S3 notification is a JSON string inside `Message`.
    if value.get("Type").and_then(|t| t.as_str()) == Some("Notification") && depth == 0 {
        let message = value
            .get("Message")
            .and_then(|m| m.as_str())
            .ok_or(ParseError::UnknownEnvelope)?;
        return parse_value(serde_json::from_str(message)?, depth + 1);
    }
    if value.get("source").and_then(|s| s.as_str()) == Some("aws.s3") {
        let event: EventBridgeEvent = serde_json::from_value(value)?;
        return Ok(Notification::Objects(vec![event.into()]));
    }
    Err(ParseError::UnknownEnvelope)
}

/// Decodes an event key: S3 form-URL-encodes keys in notifications (`+` is a space, `%XX` a
/// byte). Emulators differ in which characters they escape (moto also escapes `/`), which this
/// handles because any escaped byte decodes the same way.
pub fn decode_key(raw: &str) -> Result<String, ParseError> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| ParseError::KeyEncoding {
            raw: raw.to_owned(),
        })
}

#[derive(Deserialize)]
struct DirectNotification {
    #[serde(rename = "Records")]
    records: Vec<DirectRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectRecord {
    event_name: String,
    #[serde(default)]
    event_time: String,
    s3: DirectS3,
}

#[derive(Deserialize)]
struct DirectS3 {
    bucket: DirectBucket,
    object: DirectObject,
}

#[derive(Deserialize)]
struct DirectBucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectObject {
    key: String,
    size: Option<u64>,
    e_tag: Option<String>,
    version_id: Option<String>,
}

impl TryFrom<DirectRecord> for ObjectEvent {
    type Error = ParseError;

    fn try_from(r: DirectRecord) -> Result<Self, ParseError> {
        // S3 prefixes names with "s3:" in some tools' output; the documented form has none.
        let event_name = r.event_name.trim_start_matches("s3:").to_owned();
        Ok(Self {
            event_name,
            event_time: r.event_time,
            bucket: r.s3.bucket.name,
            key: decode_key(&r.s3.object.key)?,
            size: r.s3.object.size,
            etag: r
                .s3
                .object
                .e_tag
                .map(|e| crate::id::normalize_etag(&e).to_owned()),
            // An empty versionId means "unversioned" in some emulators.
            version_id: r.s3.object.version_id.filter(|v| !v.is_empty()),
        })
    }
}

#[derive(Deserialize)]
struct EventBridgeEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    #[serde(default)]
    time: String,
    detail: EventBridgeDetail,
}

#[derive(Deserialize)]
struct EventBridgeDetail {
    bucket: DirectBucket,
    object: EventBridgeObject,
}

#[derive(Deserialize)]
struct EventBridgeObject {
    key: String,
    size: Option<u64>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
}

impl From<EventBridgeEvent> for ObjectEvent {
    fn from(e: EventBridgeEvent) -> Self {
        let event_name = match e.detail_type.as_str() {
            "Object Created" => "ObjectCreated:Put".to_owned(),
            other => other.to_owned(),
        };
        Self {
            event_name,
            event_time: e.time,
            bucket: e.detail.bucket.name,
            // EventBridge carries the key as stored, not form-URL-encoded.
            key: e.detail.object.key,
            size: e.detail.object.size,
            etag: e
                .detail
                .object
                .etag
                .map(|t| crate::id::normalize_etag(&t).to_owned()),
            version_id: e.detail.object.version_id.filter(|v| !v.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_form_url_decoded() {
        assert_eq!(decode_key("red+flower.jpg").unwrap(), "red flower.jpg");
        assert_eq!(decode_key("a%2Bb.png").unwrap(), "a+b.png");
        assert_eq!(
            decode_key("incoming%2Fx%2Fy.png").unwrap(),
            "incoming/x/y.png"
        );
        assert_eq!(
            decode_key("incoming/caf%C3%A9.png").unwrap(),
            "incoming/café.png"
        );
        assert_eq!(decode_key("a%20b").unwrap(), "a b");
        assert_eq!(decode_key("100%25").unwrap(), "100%");
    }

    #[test]
    fn keys_that_are_not_utf8_are_an_error() {
        assert!(matches!(
            decode_key("bad%FF"),
            Err(ParseError::KeyEncoding { .. })
        ));
    }

    #[test]
    fn unknown_json_is_an_unknown_envelope() {
        assert!(matches!(
            parse_notification(r#"{"hello": 1}"#),
            Err(ParseError::UnknownEnvelope)
        ));
        assert!(matches!(
            parse_notification("not json"),
            Err(ParseError::Shape(_))
        ));
    }
}

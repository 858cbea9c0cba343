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
    /// S3's order of PUTs and DELETEs on one key ([`order_key`] makes two comparable).
    pub sequencer: Option<String>,
}

/// What an event did to its key, with S3's version semantics
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-event-types-and-destinations.html>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectChange {
    /// A new object (or a new version) became the key's current content.
    Created,
    /// The key no longer has a current object: a deletion on an unversioned bucket, a delete
    /// marker (by a user or by lifecycle expiry) on a versioned one, or a lifecycle expiry of an
    /// unversioned object. Whatever the key held is gone.
    KeyRemoved,
    /// One version was permanently deleted (by a user naming it, or by lifecycle expiry of a
    /// noncurrent version): only that version's image is gone; the key's current object, if
    /// another version, is untouched.
    VersionRemoved(String),
    /// Anything else (restores, tagging, replication): nothing for imgflow to do.
    Other,
}

impl ObjectEvent {
    /// Whether the event reports a new object (any `ObjectCreated:*`).
    pub fn is_object_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
    }

    /// Whether the event reports a deletion (`ObjectRemoved:*`, or lifecycle expiry:
    /// `LifecycleExpiration:Delete` and `LifecycleExpiration:DeleteMarkerCreated`).
    pub fn is_object_removed(&self) -> bool {
        self.event_name.starts_with("ObjectRemoved:")
            || self.event_name.starts_with("LifecycleExpiration:Delete")
    }

    /// What the event did to its key. A `Delete` (by a user or by lifecycle expiry) that names
    /// a version other than `null` removed that version only; without one, or with `null`
    /// (an unversioned or suspended bucket), the key's object is gone. A delete marker removes
    /// the key's current object whatever version id (the marker's own) the event carries.
    pub fn change(&self) -> ObjectChange {
        if self.is_object_created() {
            return ObjectChange::Created;
        }
        if !self.is_object_removed() {
            return ObjectChange::Other;
        }
        let version = self.version_id.as_deref().filter(|v| *v != "null");
        match (self.event_name.ends_with(":DeleteMarkerCreated"), version) {
            (false, Some(version)) => ObjectChange::VersionRemoved(version.to_owned()),
            _ => ObjectChange::KeyRemoved,
        }
    }
}

/// A sequencer in a form that compares as S3 means it to: sequencers may differ in length and
/// are compared after right-padding the shorter with zeros
/// (<https://repost.aws/knowledge-center/s3-duplicate-sqs-messages>). Uppercased and padded to
/// 32 characters, two keys compare as plain strings (which DynamoDB conditions can do).
pub fn order_key(sequencer: &str) -> String {
    format!("{:0<32}", sequencer.to_ascii_uppercase())
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

/// Encodes a key as S3 does in notifications, so [`decode_key`] gives it back.
pub fn encode_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(key, KEEP).to_string()
}

/// A direct S3 `ObjectCreated:Put` notification body for an object that is already stored,
/// as S3 would have sent it: what `imgflow backfill` sends for objects that never had an event
/// (`eventSource` names the sender).
pub fn created_notification(
    bucket: &str,
    key: &str,
    size: u64,
    etag: &str,
    version_id: Option<&str>,
    event_time: &str,
    source: &str,
) -> String {
    let mut object = serde_json::json!({"key": encode_key(key), "size": size, "eTag": etag});
    if let Some(version) = version_id {
        object["versionId"] = version.into();
    }
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": source,
        "eventTime": event_time,
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": object},
    }]})
    .to_string()
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
    sequencer: Option<String>,
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
            sequencer: r.s3.object.sequencer.filter(|q| !q.is_empty()),
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
    /// `Object Deleted` only: `Permanently Deleted` or `Delete Marker Created`.
    #[serde(rename = "deletion-type")]
    deletion_type: Option<String>,
    /// `Object Deleted` only: `DeleteObject` or `Lifecycle Expiration`.
    reason: Option<String>,
}

#[derive(Deserialize)]
struct EventBridgeObject {
    key: String,
    size: Option<u64>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

impl From<EventBridgeEvent> for ObjectEvent {
    fn from(e: EventBridgeEvent) -> Self {
        // An "Object Deleted" event says how (a permanent deletion of the version it names, or
        // a delete marker whose own version id it carries) and why (a user, or lifecycle
        // expiry); each pair maps to the direct notification's name with the same meaning.
        let event_name = match e.detail_type.as_str() {
            "Object Created" => "ObjectCreated:Put".to_owned(),
            "Object Deleted" => {
                let marker = e.detail.deletion_type.as_deref() == Some("Delete Marker Created");
                let lifecycle = e.detail.reason.as_deref() == Some("Lifecycle Expiration");
                match (lifecycle, marker) {
                    (false, false) => "ObjectRemoved:Delete",
                    (false, true) => "ObjectRemoved:DeleteMarkerCreated",
                    (true, false) => "LifecycleExpiration:Delete",
                    (true, true) => "LifecycleExpiration:DeleteMarkerCreated",
                }
                .to_owned()
            }
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
            sequencer: e.detail.object.sequencer.filter(|q| !q.is_empty()),
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
    fn a_backfill_notification_reads_back_as_the_object() {
        for key in ["incoming/a b+c/café 100%.png", "incoming/plain.jpg"] {
            let body = created_notification(
                "b",
                key,
                12,
                "e1",
                Some("v1"),
                "2026-01-02T03:04:05Z",
                "imgflow:backfill",
            );
            let Notification::Objects(events) = parse_notification(&body).unwrap() else {
                panic!("objects")
            };
            assert_eq!(events[0].key, key);
            assert_eq!(events[0].size, Some(12));
            assert_eq!(events[0].etag.as_deref(), Some("e1"));
            assert_eq!(events[0].version_id.as_deref(), Some("v1"));
            assert!(events[0].is_object_created());
        }
    }

    #[test]
    fn sequencers_compare_after_right_padding() {
        // The shorter one is padded with zeros on the right, as S3 documents.
        assert!(order_key("0055AED6DCD90281E5") < order_key("0055AED6DCD90281E6"));
        assert!(order_key("0055aed6dcd90281e5") == order_key("0055AED6DCD90281E5"));
        assert!(order_key("0055AED6DCD90281E5") < order_key("0055AED6DCD90281E500001"));
        assert!(order_key("006") > order_key("0055AED6DCD90281E5"));
    }

    #[test]
    fn deletions_are_read_from_every_envelope() {
        let direct = r#"{"Records":[{"eventName":"ObjectRemoved:Delete","eventTime":"2026-11-27T03:40:11.532Z",
            "s3":{"bucket":{"name":"b"},"object":{"key":"incoming/a.png","sequencer":"0055AED6DCD90281E5"}}}]}"#;
        let Notification::Objects(events) = parse_notification(direct).unwrap() else {
            panic!("objects")
        };
        assert!(events[0].is_object_removed() && !events[0].is_object_created());
        assert_eq!(events[0].sequencer.as_deref(), Some("0055AED6DCD90281E5"));
        let bridge = r#"{"detail-type":"Object Deleted","source":"aws.s3","time":"2026-11-27T03:40:11Z",
            "detail":{"bucket":{"name":"b"},"object":{"key":"incoming/a.png","sequencer":"0055AED6DCD90281E6"}}}"#;
        let Notification::Objects(events) = parse_notification(bridge).unwrap() else {
            panic!("objects")
        };
        assert!(events[0].is_object_removed());
        assert_eq!(events[0].sequencer.as_deref(), Some("0055AED6DCD90281E6"));
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

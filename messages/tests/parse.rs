//! Golden fixtures: real payloads (AWS documentation examples, moto's output) parse to the
//! facts ingest needs, and stage messages round-trip.
use imgflow_messages::{
    parse_notification, ImageAccepted, ImageLabeled, MessageError, Notification, StageMessage,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn single_object(name: &str) -> imgflow_messages::ObjectEvent {
    match parse_notification(&fixture(name)).unwrap() {
        Notification::Objects(mut events) => {
            assert_eq!(events.len(), 1, "{name}");
            events.remove(0)
        }
        other => panic!("{name}: expected object events, got {other:?}"),
    }
}

#[test]
fn direct_s3_put_from_aws_docs() {
    let e = single_object("s3_put_aws_docs.json");
    assert!(e.is_object_created());
    assert_eq!(e.bucket, "amzn-s3-demo-bucket");
    assert_eq!(e.key, "HappyFace.jpg");
    assert_eq!(e.size, Some(1024));
    assert_eq!(e.etag.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
    assert_eq!(
        e.version_id.as_deref(),
        Some("096fKKXTRTtl3on89fVO.nfljtsv6qko")
    );
    assert_eq!(e.event_time, "1970-01-01T00:00:00.000Z");
}

#[test]
fn moto_escapes_slashes_and_quotes_etags() {
    let e = single_object("s3_put_moto.json");
    assert_eq!(e.key, "incoming/holiday 2024/café + friends.jpg");
    assert_eq!(e.etag.as_deref(), Some("0cbc6611f5540bd0809a388dc95a615b"));
    assert_eq!(e.version_id, None);
}

#[test]
fn sns_wrapped_notification_is_unwrapped() {
    assert_eq!(
        single_object("s3_put_sns_wrapped.json"),
        single_object("s3_put_aws_docs.json")
    );
}

#[test]
fn eventbridge_object_created_maps_to_the_same_facts() {
    let e = single_object("s3_object_created_eventbridge_aws_docs.json");
    assert!(e.is_object_created());
    assert_eq!(e.bucket, "amzn-s3-demo-bucket1");
    assert_eq!(e.key, "example-key");
    assert_eq!(e.size, Some(5));
    assert_eq!(
        e.version_id.as_deref(),
        Some("IYV3p45BhZA2BSDHZO6KE7Spdb_sGR0f")
    );
}

#[test]
fn test_event_is_recognised() {
    assert_eq!(
        parse_notification(&fixture("s3_test_event_aws_docs.json")).unwrap(),
        Notification::TestEvent
    );
}

#[test]
fn removal_events_parse_but_are_not_object_created() {
    let e = single_object("s3_delete_aws_docs.json");
    assert!(!e.is_object_created());
    assert_eq!(e.etag, None);
}

#[test]
fn stage_messages_accept_unknown_fields_and_round_trip() {
    let accepted = ImageAccepted::decode(&fixture("image_accepted.json")).unwrap();
    assert_eq!(accepted.image.key, "incoming/cat photo.png");
    assert_eq!((accepted.width, accepted.height), (451, 300));
    assert_eq!(ImageAccepted::decode(&accepted.encode()).unwrap(), accepted);

    let labeled = ImageLabeled::decode(&fixture("image_labeled.json")).unwrap();
    assert_eq!(labeled.labels[0].name, "Cat");
    assert_eq!(labeled.labels[0].instances[0].bounding_box.left, 0.25);
    assert_eq!(labeled.labels[0].parents.len(), 3);
    assert_eq!(ImageLabeled::decode(&labeled.encode()).unwrap(), labeled);
}

#[test]
fn labels_serialize_in_rekognition_field_names() {
    let labeled = ImageLabeled::decode(&fixture("image_labeled.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&labeled.encode()).unwrap();
    let cat = &json["labels"][0];
    for field in ["Name", "Confidence", "Instances", "Parents", "Categories"] {
        assert!(cat.get(field).is_some(), "missing {field} in {cat}");
    }
    assert!(cat["Instances"][0]["BoundingBox"].get("Width").is_some());
}

#[test]
fn newer_schema_versions_are_reported_as_such() {
    let body =
        fixture("image_accepted.json").replace("\"schema_version\": 1", "\"schema_version\": 2");
    match ImageAccepted::decode(&body) {
        Err(MessageError::UnsupportedSchema { found: 2, .. }) => {}
        other => panic!("expected UnsupportedSchema, got {other:?}"),
    }
}

#[test]
fn malformed_bodies_are_malformed() {
    for body in [
        "",
        "{",
        "[]",
        r#"{"schema_version": 1}"#,
        r#"{"image_id": "x"}"#,
    ] {
        assert!(
            matches!(
                ImageAccepted::decode(body),
                Err(MessageError::Malformed { .. })
            ),
            "{body:?}"
        );
    }
}

/// Each way S3 reports a removal, in both envelopes, with what it did to the key.
#[test]
fn every_removal_maps_to_what_it_did_to_the_key() {
    use imgflow_messages::ObjectChange;
    let direct = |name: &str, version: Option<&str>| {
        let mut object = serde_json::json!({"key": "incoming/a.png", "sequencer": "0A"});
        if let Some(v) = version {
            object["versionId"] = v.into();
        }
        let body = serde_json::json!({"Records": [{"eventName": name,
            "s3": {"bucket": {"name": "b"}, "object": object}}]});
        single(&body.to_string())
    };
    let bridge = |deletion_type: &str, reason: &str, version: &str| {
        let body = serde_json::json!({"detail-type": "Object Deleted", "source": "aws.s3",
            "detail": {"bucket": {"name": "b"}, "deletion-type": deletion_type, "reason": reason,
                "object": {"key": "incoming/a.png", "version-id": version, "sequencer": "0A"}}});
        single(&body.to_string())
    };
    let version = || ObjectChange::VersionRemoved("v1".into());
    let cases = [
        // Unversioned (or suspended: the null version) deletions remove the key's object.
        (
            direct("ObjectRemoved:Delete", None),
            ObjectChange::KeyRemoved,
        ),
        (
            direct("ObjectRemoved:Delete", Some("null")),
            ObjectChange::KeyRemoved,
        ),
        (
            direct("LifecycleExpiration:Delete", None),
            ObjectChange::KeyRemoved,
        ),
        // A version named: that version only, by a user or by lifecycle expiry.
        (direct("ObjectRemoved:Delete", Some("v1")), version()),
        (direct("LifecycleExpiration:Delete", Some("v1")), version()),
        // A delete marker names its own version: the key's object is gone.
        (
            direct("ObjectRemoved:DeleteMarkerCreated", Some("m1")),
            ObjectChange::KeyRemoved,
        ),
        (
            direct("LifecycleExpiration:DeleteMarkerCreated", Some("m1")),
            ObjectChange::KeyRemoved,
        ),
        (
            bridge("Permanently Deleted", "DeleteObject", "v1"),
            version(),
        ),
        (
            bridge("Permanently Deleted", "Lifecycle Expiration", "v1"),
            version(),
        ),
        (
            bridge("Delete Marker Created", "DeleteObject", "m1"),
            ObjectChange::KeyRemoved,
        ),
        (
            bridge("Delete Marker Created", "Lifecycle Expiration", "m1"),
            ObjectChange::KeyRemoved,
        ),
        (
            direct("ObjectCreated:Copy", Some("v1")),
            ObjectChange::Created,
        ),
        (direct("ObjectRestore:Completed", None), ObjectChange::Other),
        (direct("LifecycleTransition", None), ObjectChange::Other),
    ];
    for (event, change) in cases {
        assert_eq!(event.change(), change, "{event:?}");
    }
    let lifecycle = bridge("Delete Marker Created", "Lifecycle Expiration", "m1");
    assert_eq!(
        lifecycle.event_name,
        "LifecycleExpiration:DeleteMarkerCreated"
    );
}

fn single(body: &str) -> imgflow_messages::ObjectEvent {
    match parse_notification(body).unwrap() {
        Notification::Objects(mut events) => events.remove(0),
        other => panic!("{other:?}"),
    }
}

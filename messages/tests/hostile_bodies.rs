//! Random and mutated queue bodies: every parser answers with a value or an error, never a
//! panic, for S3 notifications (direct, SNS-wrapped, EventBridge) and stage messages.
use imgflow_messages::{
    parse_notification, s3_event::decode_key, ImageAccepted, ImageLabeled, StageMessage,
};
use proptest::prelude::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

const FIXTURES: [&str; 8] = [
    "s3_put_aws_docs.json",
    "s3_put_moto.json",
    "s3_put_sns_wrapped.json",
    "s3_object_created_eventbridge_aws_docs.json",
    "s3_delete_aws_docs.json",
    "s3_test_event_aws_docs.json",
    "image_accepted.json",
    "image_labeled.json",
];

/// Every parser a queue body meets; each may fail, none may panic.
fn parse_all(body: &str) {
    if let Err(e) = parse_notification(body) {
        assert!(!e.to_string().is_empty());
    }
    let _ = ImageAccepted::decode(body);
    let _ = ImageLabeled::decode(body);
}

/// Overwrites characters at `(position, char)` and optionally cuts the text at a fraction.
fn mutate(text: &str, edits: &[(usize, char)], cut: Option<f64>) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, c) in edits {
        let len = chars.len();
        chars[at % len] = *c;
    }
    if let Some(cut) = cut {
        chars.truncate((chars.len() as f64 * cut) as usize);
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_text(body in ".{0,400}") {
        parse_all(&body);
    }

    #[test]
    fn mutated_real_payloads(
        which in 0..FIXTURES.len(),
        edits in proptest::collection::vec((any::<usize>(), prop_oneof![
            Just('"'), Just('{'), Just('}'), Just('['), Just(']'), Just(','), Just(':'),
            Just('\\'), Just('%'), Just('+'), Just('0'), Just('-'), any::<char>()
        ]), 0..8),
        cut in proptest::option::of(0.0f64..1.0),
    ) {
        parse_all(&mutate(&fixture(FIXTURES[which]), &edits, cut));
    }

    #[test]
    fn keys_with_any_escapes(raw in "[a-zA-Z0-9%+/._ -]{0,200}") {
        // Form-URL-decoding agrees with a reference decoder written from the rules: `+` is
        // a space, `%XX` a byte, anything else itself; invalid UTF-8 is an error.
        match (decode_key(&raw), reference_decode(&raw)) {
            (Ok(key), Some(expected)) => prop_assert_eq!(key, expected),
            (Err(e), None) => prop_assert!(!e.to_string().is_empty()),
            (got, expected) => prop_assert!(false, "{:?}: decoded {:?}, reference {:?}", raw, got, expected),
        }
    }

    #[test]
    fn any_key_survives_the_notification_round_trip(key in "\\PC{0,300}") {
        // What S3 (and backfill) encode, ingest decodes to the same key.
        prop_assert_eq!(decode_key(&imgflow_messages::s3_event::encode_key(&key)).unwrap(), key.clone());
        let body = imgflow_messages::created_notification("b", &key, 1, "e", None, "t", "test");
        match parse_notification(&body).unwrap() {
            imgflow_messages::Notification::Objects(events) => prop_assert_eq!(&events[0].key, &key),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn deeply_nested_json(depth in 1usize..5000) {
        // serde_json refuses past 128 levels instead of overflowing the stack.
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        parse_all(&body);
        let wrapped = format!("{{\"Message\": \"{}\"}}", "[".repeat(depth));
        parse_all(&wrapped);
    }
}

/// Form-URL decoding as the rules say it, byte by byte.
fn reference_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let (mut out, mut at) = (Vec::new(), 0);
    while at < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[at] {
            b'+' => out.push(b' '),
            b'%' if at + 2 < bytes.len() => match (hex(bytes[at + 1]), hex(bytes[at + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    at += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        at += 1;
    }
    String::from_utf8(out).ok()
}

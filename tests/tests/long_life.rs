//! A key's long life on the emulator: hundreds of overwrites of one key, the ledger's
//! conditional writes taken by two writers at once, and three events of one key out of order.
use std::{sync::Arc, time::Duration};

use aws_sdk_dynamodb::types::AttributeValue;
use imgflow_catalog::keys::{object_pk, OBJECT_SK};
use imgflow_e2e::{png_with_dimensions, until, TestPipeline};
use imgflow_messages::ImageStatus;
use imgflow_runtime::{
    config::Stage,
    ledger::{Fate, KeyChange, KeyHistory},
    ports::{ImageTable, ObjectLedger},
};
use tokio::sync::Barrier;

fn event(p: &TestPipeline, name: &str, key: &str, etag: Option<&str>, sequencer: &str) -> String {
    let mut object = serde_json::json!({"key": key, "sequencer": sequencer});
    if let Some(etag) = etag {
        object["eTag"] = etag.into();
    }
    serde_json::json!({"Records": [{
        "eventName": name, "eventTime": "2026-12-07T00:00:00.000Z",
        "s3": {"bucket": {"name": p.names.bucket}, "object": object}
    }]})
    .to_string()
}

/// The ledger item of `key` as stored: its history and its size in bytes.
async fn ledger_item(p: &TestPipeline, key: &str) -> (KeyHistory, usize) {
    let item = p
        .aws
        .dynamodb
        .get_item()
        .table_name(&p.names.index_table)
        .key("pk", AttributeValue::S(object_pk(&p.names.bucket, key)))
        .key("sk", AttributeValue::S(OBJECT_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let size: usize = item
        .iter()
        .map(|(name, value)| name.len() + value.as_s().map_or(8, String::len))
        .sum();
    let history = serde_json::from_str(item["history"].as_s().unwrap()).unwrap();
    (history, size)
}

/// Two writers record events of one key at the same moment, many times: DynamoDB's
/// condition makes them take turns, so no event is lost and the item stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_of_one_key_lose_no_event_and_the_ledger_stays_small() {
    let p = TestPipeline::new("e2e-ledger-writers").await;
    let index = Arc::new(p.index());
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = (0..2u32)
        .map(|writer| {
            let (index, barrier, bucket) = (index.clone(), barrier.clone(), p.names.bucket.clone());
            tokio::spawn(async move {
                for n in 0..100u32 {
                    // Both writers start each round together.
                    barrier.wait().await;
                    let sequence = 0x1000 + 2 * n + writer;
                    let id = format!("{sequence:032x}");
                    index
                        .record(
                            &bucket,
                            "incoming/camera.jpg",
                            Some(&format!("{sequence:08X}")),
                            "2026-12-07T00:00:00.000Z",
                            KeyChange::Created(&id),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let (history, size) = ledger_item(&p, "incoming/camera.jpg").await;
    assert_eq!(history.version, 200, "every event recorded exactly once");
    assert!(size < 4096, "ledger item {size} bytes");
    let last = format!("{:032x}", 0x1000 + 2 * 99 + 1);
    assert_eq!(history.fate(&last), Some(Fate::Live));
    println!("ledger item after 200 concurrent overwrites: {size} bytes");
}

/// A key overwritten a few hundred times through the real ingest worker, events in whatever
/// order its concurrent consumers take them: the last upload is the key's image, every other
/// is replaced, out of the gallery, and the ledger stays one small item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_overwritten_hundreds_of_times_ends_with_one_live_image() {
    let mut p = TestPipeline::new("e2e-overwrites").await;
    p.without_notifications().await;
    p.start_ingest().await;
    let key = "incoming/camera.png";
    let mut ids = Vec::new();
    for n in 0..250u32 {
        let id = p.put(key, png_with_dimensions(100 + n, 80)).await;
        let head = p
            .aws
            .s3
            .head_object()
            .bucket(&p.names.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let etag = head.e_tag().unwrap().trim_matches('"').to_owned();
        let body = event(
            &p,
            "ObjectCreated:Put",
            key,
            Some(&etag),
            &format!("{:08X}", 0x1000 + n),
        );
        p.send(Stage::Ingest, &body).await;
        ids.push(id);
    }
    let last = ids.pop().unwrap();
    until(
        "every overwrite decided",
        Duration::from_secs(180),
        || async {
            let items = p.items().await;
            let replaced = items
                .iter()
                .filter(|r| r.status == ImageStatus::Replaced)
                .count();
            (replaced == ids.len()).then_some(())
        },
    )
    .await;
    p.wait_idle(Duration::from_secs(60)).await;
    let table = p.table();
    assert_eq!(
        table.get(&last).await.unwrap().unwrap().status,
        ImageStatus::Accepted
    );
    let (_, size) = ledger_item(&p, key).await;
    assert!(size < 4096, "ledger item {size} bytes");
    println!("ledger item after 250 overwrites through ingest: {size} bytes");
    p.stop().await;
}

/// PUT v1 (0A), PUT v2 (0C), and the DELETE between them (0B) arriving last: in order, v1
/// was deleted and v2 is the key's object; that is how it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_deletion_ends_the_image_it_followed_not_the_later_one() {
    let mut p = TestPipeline::new("e2e-three-events").await;
    p.without_notifications().await;
    p.start_ingest().await;
    let key = "incoming/three.png";
    let etag_of = |p: &TestPipeline| {
        let s3 = p.aws.s3.clone();
        let bucket = p.names.bucket.clone();
        async move {
            let head = s3.head_object().bucket(bucket).key(key).send().await;
            head.unwrap().e_tag().unwrap().trim_matches('"').to_owned()
        }
    };
    let v1 = p.put(key, png_with_dimensions(140, 100)).await;
    let etag1 = etag_of(&p).await;
    p.send(
        Stage::Ingest,
        &event(&p, "ObjectCreated:Put", key, Some(&etag1), "0A"),
    )
    .await;
    let v2 = p.put(key, png_with_dimensions(141, 100)).await;
    let etag2 = etag_of(&p).await;
    p.send(
        Stage::Ingest,
        &event(&p, "ObjectCreated:Put", key, Some(&etag2), "0C"),
    )
    .await;
    let table = p.table();
    until("v1 replaced", Duration::from_secs(30), || async {
        let status = table.get(&v1).await.unwrap().map(|r| r.status);
        (status == Some(ImageStatus::Replaced)).then_some(())
    })
    .await;
    p.send(
        Stage::Ingest,
        &event(&p, "ObjectRemoved:Delete", key, None, "0B"),
    )
    .await;
    until("v1 deleted", Duration::from_secs(30), || async {
        let status = table.get(&v1).await.unwrap().map(|r| r.status);
        (status == Some(ImageStatus::Deleted)).then_some(())
    })
    .await;
    p.wait_idle(Duration::from_secs(30)).await;
    assert_eq!(
        table.get(&v2).await.unwrap().unwrap().status,
        ImageStatus::Accepted
    );
    p.stop().await;
}

/// A ledger item of the earlier format (every id ever created under the key, the latest
/// sequencer) is taken over by the next event, not refused for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_item_of_the_earlier_format_is_taken_over() {
    let p = TestPipeline::new("e2e-ledger-upgrade").await;
    let key = "incoming/old.png";
    p.aws
        .dynamodb
        .put_item()
        .table_name(&p.names.index_table)
        .item("pk", AttributeValue::S(object_pk(&p.names.bucket, key)))
        .item("sk", AttributeValue::S(OBJECT_SK.into()))
        .item("image_ids", AttributeValue::Ss(vec!["a".repeat(32)]))
        .item("sequencer", AttributeValue::S("0A".into()))
        .item("deleted", AttributeValue::Bool(false))
        .send()
        .await
        .unwrap();
    let decision = p
        .index()
        .record(
            &p.names.bucket,
            key,
            Some("0B"),
            "2026-12-07T00:00:00.000Z",
            KeyChange::Created(&"b".repeat(32)),
        )
        .await
        .unwrap();
    assert_eq!(decision.fates, [("b".repeat(32), Fate::Live)]);
    let (history, _) = ledger_item(&p, key).await;
    assert_eq!(history.version, 1);
}

//! The join of the two branches on the emulator's DynamoDB and SNS: the real conditional
//! expressions decide, in either order, and the whole pipeline publishes one
//! `ImageCompleted` per image however the branches' messages are repeated.
use std::{collections::HashMap, sync::Arc, time::Duration};

use imgflow_e2e::{photo, until, TestPipeline};
use imgflow_messages::{
    thumbnail_key, ImageAccepted, ImageLabeled, ImageRecord, ImageRef, ImageStatus, Label,
    StageMessage, Thumbnail, SCHEMA_VERSION,
};
use imgflow_runtime::{
    config::{Stage, COMPLETED_TOPIC},
    fakes::deletion,
    fakes::FakeDetector,
    ports::{
        Branch, CompletionClaim, ImageTable, Join, LabelsWrite, Revival, ThumbnailOutcome,
        ThumbnailWrite,
    },
};

fn image(id: &str) -> ImageRef {
    ImageRef {
        image_id: id.into(),
        trace_id: "t".into(),
        bucket: "b".into(),
        key: format!("incoming/{id}.png"),
        version_id: None,
        etag: "e".into(),
        received_at: "2026-11-28T06:00:00.000000Z".into(),
    }
}

fn labeled(id: &str) -> ImageLabeled {
    ImageLabeled {
        duplicate_of: None,
        schema_version: SCHEMA_VERSION,
        image: image(id),
        labels: vec![Label {
            name: "Cat".into(),
            confidence: 90.0,
            instances: vec![],
            parents: vec![],
            categories: vec![],
        }],
        detector: "fake".into(),
        label_model_version: "1".into(),
        labeled_at: "2026-11-28T06:00:01.000000Z".into(),
    }
}

fn made(id: &str) -> ThumbnailOutcome {
    ThumbnailOutcome::Made(Thumbnail {
        key: thumbnail_key(id),
        width: 320,
        height: 200,
        made_at: None,
        perceptual_hash: None,
    })
}

async fn accepted_item(p: &TestPipeline, id: &str) {
    let i = image(id);
    let record = ImageRecord::new(
        id.into(),
        i.bucket,
        i.key,
        i.etag,
        i.received_at,
        ImageStatus::Accepted,
    );
    p.table().write_verdict(&record).await.unwrap();
}

/// A completion attempt at `now` by the message `m1`, its lease far ahead.
fn claim(now: &str) -> CompletionClaim {
    CompletionClaim {
        token: "m1".into(),
        now: now.into(),
        until: "t9".into(),
        generation: String::new(),
    }
}

async fn labels(p: &TestPipeline, id: &str) -> Join {
    match p.table().write_labels(&labeled(id), "now").await.unwrap() {
        LabelsWrite::Written { join, .. } => join,
        LabelsWrite::Superseded => panic!("labels superseded"),
    }
}

async fn thumbnail(p: &TestPipeline, id: &str) -> ThumbnailWrite {
    p.table().write_thumbnail(id, &made(id)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_lets_exactly_one_branch_complete_in_either_order() {
    let p = TestPipeline::new("e2e-join-conditions").await;
    let t = p.table();

    // Labels first: the thumbnail's write finds them and completes.
    accepted_item(&p, "a").await;
    assert_eq!(labels(&p, "a").await, Join::Waiting);
    assert_eq!(
        thumbnail(&p, "a").await,
        ThumbnailWrite::Written(Join::Ready)
    );
    let done = t
        .complete("a", Branch::Thumbnail, &claim("t2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.completed_at.as_deref(), Some("t2"));
    assert!(done.thumbnail.is_some() && done.labels.is_some());
    // A duplicate of the branch's message (another id) is refused while the lease holds, and
    // takes over an unannounced completion once it has run out.
    let duplicate = |now: &str| CompletionClaim {
        token: "m2".into(),
        now: now.into(),
        until: "t9".into(),
        generation: String::new(),
    };
    assert!(t
        .complete("a", Branch::Thumbnail, &duplicate("t3"))
        .await
        .unwrap()
        .is_none());
    // Cut short before announcing: the same message may complete again, keeping the time.
    let again = t
        .complete("a", Branch::Thumbnail, &claim("t3"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.completed_at.as_deref(), Some("t2"));
    assert!(t
        .complete("a", Branch::Thumbnail, &duplicate("t9z"))
        .await
        .unwrap()
        .is_some());
    t.completion_announced("a").await.unwrap();
    assert!(t
        .complete("a", Branch::Thumbnail, &claim("t4"))
        .await
        .unwrap()
        .is_none());
    // Redeliveries of either branch see an announced completion.
    assert_eq!(labels(&p, "a").await, Join::Completed);
    assert_eq!(
        thumbnail(&p, "a").await,
        ThumbnailWrite::Written(Join::Completed)
    );

    // Thumbnail first: the labels' write finds it and completes.
    accepted_item(&p, "b").await;
    assert_eq!(
        thumbnail(&p, "b").await,
        ThumbnailWrite::Written(Join::Waiting)
    );
    assert!(
        t.complete("b", Branch::Thumbnail, &claim("t1"))
            .await
            .unwrap()
            .is_none(),
        "no labels yet"
    );
    assert_eq!(labels(&p, "b").await, Join::Ready);
    assert!(t
        .complete("b", Branch::Labels, &claim("t2"))
        .await
        .unwrap()
        .is_some());
    assert!(
        t.complete("b", Branch::Thumbnail, &claim("t3"))
            .await
            .unwrap()
            .is_none(),
        "the labels' completion is theirs to announce"
    );

    // A thumbnail that could not be made still completes the branch.
    accepted_item(&p, "c").await;
    labels(&p, "c").await;
    let failed = ThumbnailOutcome::Failed("cannot decode".into());
    assert_eq!(
        t.write_thumbnail("c", &failed).await.unwrap(),
        ThumbnailWrite::Written(Join::Ready)
    );

    // A deleted image refuses the thumbnail and never completes; a revival starts over.
    accepted_item(&p, "d").await;
    labels(&p, "d").await;
    t.end(&deletion("d", 1)).await.unwrap();
    assert_eq!(thumbnail(&p, "d").await, ThumbnailWrite::Refused);
    assert!(t
        .complete("d", Branch::Labels, &claim("t2"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        thumbnail(&p, "a").await,
        ThumbnailWrite::Written(Join::Completed)
    );
    t.end(&deletion("a", 1)).await.unwrap();
    assert_eq!(t.live("a", 2).await.unwrap(), Revival::Revived);
    let revived = t.get("a").await.unwrap().unwrap();
    assert!(revived.completed_at.is_none() && revived.thumbnail.is_none());
    assert_eq!(
        thumbnail(&p, "a").await,
        ThumbnailWrite::Written(Join::Waiting)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_image_completes_once_however_its_branches_messages_repeat() {
    let mut p = TestPipeline::new("e2e-join").await;
    let watch = p.subscribe_queue(COMPLETED_TOPIC, "completed-watch").await;
    p.start_ingest().await;
    p.start_label(FakeDetector::new(vec![labeled("x").labels[0].clone()]))
        .await;
    p.start_store().await;
    p.start_thumbnail().await;
    let mut ids = Vec::new();
    for (i, name) in ["rocket.jpg", "chelsea.png", "coffee.png"]
        .iter()
        .enumerate()
    {
        ids.push(
            p.put(&format!("incoming/join-{i}-{name}"), photo(name))
                .await,
        );
    }
    let mut events = Vec::new();
    until("three completions", Duration::from_secs(90), || async {
        let items = p.table();
        let mut all = true;
        for id in &ids {
            all &= items.get(id).await.ok()??.completed_at.is_some();
        }
        all.then_some(())
    })
    .await;

    // Each branch's message again, for every image: labels to the store stage, the accepted
    // image to the thumbnail stage, twice each.
    for id in &ids {
        let item = p.table().get(id).await.unwrap().unwrap();
        let image = ImageRef {
            image_id: item.id.clone(),
            trace_id: item.trace_id.clone().unwrap_or_default(),
            bucket: item.bucket.clone(),
            key: item.key.clone(),
            version_id: item.version_id.clone(),
            etag: item.etag.clone(),
            received_at: item.received_at.clone(),
        };
        let again_labeled = ImageLabeled {
            duplicate_of: None,
            schema_version: SCHEMA_VERSION,
            image: image.clone(),
            labels: item.labels.clone().unwrap(),
            detector: item.detector.clone().unwrap(),
            label_model_version: item.label_model_version.clone().unwrap(),
            labeled_at: item.labeled_at.clone().unwrap(),
        };
        let again_accepted = ImageAccepted {
            schema_version: SCHEMA_VERSION,
            image,
            content_type: item.content_type.clone().unwrap(),
            size: item.size.unwrap(),
            width: item.width.unwrap(),
            height: item.height.unwrap(),
            accepted_at: item.accepted_at.clone().unwrap(),
            relabel: None,
            content_md5: None,
        };
        for _ in 0..2 {
            p.send(Stage::Store, &again_labeled.encode()).await;
            p.send(Stage::Thumbnail, &again_accepted.encode()).await;
        }
    }
    p.wait_idle(Duration::from_secs(60)).await;
    events.extend(p.drain_completions(&watch).await);
    p.stop().await;

    let mut per_image: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        *per_image.entry(e.image.image_id.as_str()).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(per_image.get(id.as_str()), Some(&1), "{id}: {events:?}");
        let item = p.table().get(id).await.unwrap().unwrap();
        let event = events.iter().find(|e| &e.image.image_id == id).unwrap();
        assert_eq!(item.completed_at.as_ref(), Some(&event.completed_at));
        // (A redelivered thumbnail message makes the same thumbnail again, at a later time.)
        let thumbnail = item.thumbnail.unwrap();
        let announced = event.thumbnail.clone().unwrap();
        assert_eq!(
            (&announced.key, announced.width, announced.height),
            (&thumbnail.key, thumbnail.width, thumbnail.height)
        );
        assert!(thumbnail.width.max(thumbnail.height) <= 320);
        // The stored thumbnail is a JPEG of the recorded size.
        let stored = p
            .aws
            .s3
            .get_object()
            .bucket(&p.names.bucket)
            .key(&thumbnail.key)
            .send()
            .await
            .unwrap();
        assert_eq!(stored.content_type(), Some("image/jpeg"));
        let bytes = stored.body.collect().await.unwrap().into_bytes();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (thumbnail.width, thumbnail.height)
        );
    }
    assert_eq!(events.len(), ids.len());
}

/// Both branches' writes from tasks released together, each branch twice (a duplicate message
/// with another id, before any completion), for many images: DynamoDB's conditions let
/// exactly one attempt record each image's completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_branches_and_duplicates_record_one_completion_per_image() {
    let p = TestPipeline::new("e2e-join-race").await;
    let mut recorded = HashMap::new();
    for n in 0..24 {
        let id = format!("race{n}");
        accepted_item(&p, &id).await;
        let start = Arc::new(tokio::sync::Barrier::new(4));
        // Both orders of release: the thumbnail tasks first half the time.
        let mut attempts = vec![
            (Branch::Labels, "m1"),
            (Branch::Labels, "m2"),
            (Branch::Thumbnail, "m3"),
            (Branch::Thumbnail, "m4"),
        ];
        if n % 2 == 1 {
            attempts.reverse();
        }
        let tasks: Vec<_> = attempts
            .into_iter()
            .map(|(branch, token)| {
                let (t, start, id) = (p.table(), start.clone(), id.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let join = match branch {
                        Branch::Labels => match t.write_labels(&labeled(&id), "now").await.unwrap()
                        {
                            LabelsWrite::Written { join, .. } => join,
                            LabelsWrite::Superseded => panic!("labels superseded"),
                        },
                        Branch::Thumbnail => {
                            match t.write_thumbnail(&id, &made(&id)).await.unwrap() {
                                ThumbnailWrite::Written(join) => join,
                                ThumbnailWrite::Refused => panic!("thumbnail refused"),
                            }
                        }
                    };
                    if join != Join::Ready {
                        return 0;
                    }
                    let claim = CompletionClaim {
                        token: token.into(),
                        now: imgflow_runtime::clock::now_rfc3339(),
                        until: imgflow_runtime::clock::rfc3339_after(Duration::from_secs(300)),
                        generation: String::new(),
                    };
                    usize::from(t.complete(&id, branch, &claim).await.unwrap().is_some())
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        recorded.insert(id, total);
    }
    assert!(
        recorded.values().all(|n| *n == 1),
        "completions recorded per image: {recorded:?}"
    );
}

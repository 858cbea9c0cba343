//! The pipeline with `IMGFLOW_DETECTOR=local` on the emulator: real photos through S3, SQS,
//! SNS and DynamoDB get the labels a person would give them.
use std::{sync::Arc, time::Duration};

use imgflow_aws::s3::S3Store;
use imgflow_e2e::{photo, TestPipeline};
use imgflow_local_detector::{default_models_dir, LocalDetector, Models};
use imgflow_messages::ImageStatus;
use imgflow_runtime::config::Stage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_photos_get_real_labels_end_to_end() {
    let mut p = TestPipeline::new("e2e-local").await;
    let models = Arc::new(Models::load(&default_models_dir()).expect("loading the local models"));
    let detector = LocalDetector::new(Arc::new(S3Store::new(p.aws.s3.clone())), models);
    p.start_ingest().await;
    p.start_label(detector).await;
    p.start_store().await;

    let expectations: [(&str, &[&[&str]]); 8] = [
        ("chelsea.png", &[&["Cat"]]),
        ("coffee.png", &[&["Cup", "Coffee"]]),
        ("astronaut.png", &[&["Person"]]),
        ("motorcycle_left.png", &[&["Motorcycle"]]),
        ("dog.jpg", &[&["Dog"]]),
        ("giraffe.jpg", &[&["Giraffe"]]),
        ("eagle.jpg", &[&["Bird"]]),
        ("kite.jpg", &[&["Kite"], &["Person"]]),
    ];
    let mut ids = Vec::new();
    for (name, _) in &expectations {
        ids.push(p.put(&format!("incoming/photos/{name}"), photo(name)).await);
    }
    let records = p.wait_final(&ids, Duration::from_secs(120)).await;
    for ((name, wanted), record) in expectations.iter().zip(&records) {
        assert_eq!(
            record.status,
            ImageStatus::Labeled,
            "{name}: {:?}",
            record.reason
        );
        assert_eq!(record.detector.as_deref(), Some("local"));
        let labels = record.labels.as_deref().unwrap_or_default();
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        for any_of in *wanted {
            assert!(
                any_of.iter().any(|w| names.contains(w)),
                "{name}: expected one of {any_of:?} in {names:?}"
            );
        }
        assert!(labels
            .iter()
            .all(|l| l.confidence >= 55.0 && l.confidence <= 100.0));
    }
    let kite = records.last().unwrap().labels.as_deref().unwrap();
    let boxes = &kite.iter().find(|l| l.name == "Kite").unwrap().instances;
    assert!(
        !boxes.is_empty(),
        "detected objects keep their boxes through DynamoDB"
    );
    for stage in Stage::ALL {
        assert!(p.dead_letters(stage).await.is_empty());
    }
    p.stop().await;
}

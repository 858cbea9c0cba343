//! The console's indexes on the emulator: label search through the index table (parents, any
//! case, paged, idempotent, cleaned up on relabel) and the gallery through the day indexes.
use std::collections::HashSet;

use imgflow_catalog::ports::{ImageCatalog, ImagePage, ImageQuery};
use imgflow_e2e::TestPipeline;
use imgflow_messages::{
    ImageLabeled, ImageRecord, ImageRef, ImageStatus, Label, NamedRef, SCHEMA_VERSION,
};
use imgflow_runtime::{clock, ports::ImageTable, PortErrorKind};

fn label(name: &str, parents: &[&str]) -> Label {
    Label {
        name: name.into(),
        confidence: 90.0,
        instances: vec![],
        parents: parents.iter().map(|p| NamedRef::new(*p)).collect(),
        categories: vec![],
    }
}

fn image_ref(p: &TestPipeline, n: usize) -> ImageRef {
    ImageRef {
        image_id: format!("{n:032x}"),
        trace_id: format!("t{n}"),
        bucket: p.names.bucket.clone(),
        key: format!("incoming/{n}.jpg"),
        version_id: None,
        etag: format!("e{n}"),
        received_at: clock::now_rfc3339(),
    }
}

async fn ingest(p: &TestPipeline, image: &ImageRef, status: ImageStatus) {
    let record = ImageRecord::new(
        image.image_id.clone(),
        image.bucket.clone(),
        image.key.clone(),
        image.etag.clone(),
        image.received_at.clone(),
        status,
    );
    p.table().write_verdict(&record).await.unwrap();
}

fn labeled(image: &ImageRef, labels: Vec<Label>) -> ImageLabeled {
    ImageLabeled {
        duplicate_of: None,
        schema_version: SCHEMA_VERSION,
        image: image.clone(),
        labels,
        detector: "test".into(),
        label_model_version: "1".into(),
        labeled_at: clock::now_rfc3339(),
    }
}

/// Every page of `query`, in order.
async fn all_pages(p: &TestPipeline, mut query: ImageQuery) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..20 {
        let page = p.catalog().list(&query).await.unwrap();
        assert!(page.images.len() <= query.limit);
        ids.extend(page.images.into_iter().map(|r| r.id));
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return ids,
        }
    }
    panic!("more than 20 pages");
}

fn search(label: &str, limit: usize) -> ImageQuery {
    ImageQuery {
        label: Some(label.into()),
        limit,
        ..ImageQuery::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_are_searchable_by_any_case_and_by_parent_newest_first_and_paged() {
    let p = TestPipeline::new("e2e-catalog-labels").await;

    let images: Vec<ImageRef> = (0..5).map(|n| image_ref(&p, n)).collect();
    let kinds = [
        vec![label("Cat", &["Animal", "Pet"])],
        vec![label("Dog", &["Animal", "Pet"])],
        vec![label("Cat", &["Animal", "Pet"])],
        vec![label("Car", &["Vehicle"])],
        vec![label("Dog", &["Animal"]), label("Animal", &[])],
    ];
    for (image, labels) in images.iter().zip(kinds) {
        ingest(&p, image, ImageStatus::Accepted).await;
        let labeled = labeled(image, labels);
        p.store_labels(&labeled).await;
        // A redelivery writes the same entries again, adding none.
        p.store_labels(&labeled).await;
    }
    let id = |n: usize| images[n].image_id.clone();

    assert_eq!(
        all_pages(&p, search("animal", 2)).await,
        [id(4), id(2), id(1), id(0)]
    );
    assert_eq!(
        all_pages(&p, search("ANIMAL", 10)).await,
        [id(4), id(2), id(1), id(0)]
    );
    assert_eq!(all_pages(&p, search("Cat", 1)).await, [id(2), id(0)]);
    assert_eq!(all_pages(&p, search("vehicle", 10)).await, [id(3)]);
    assert!(all_pages(&p, search("Giraffe", 10)).await.is_empty());
    let index = p.aws.index_table(&p.names);
    let raw = index.images_with_label("animal", None, 100).await.unwrap();
    assert_eq!(
        raw.hits.len(),
        4,
        "one entry per image, redeliveries included"
    );

    // Relabeled (a replay with a newer model, say): the old labels leave the index.
    let relabel = labeled(&images[0], vec![label("Car", &["Vehicle"])]);
    p.store_labels(&relabel).await;
    assert_eq!(all_pages(&p, search("cat", 10)).await, [id(2)]);
    assert_eq!(all_pages(&p, search("vehicle", 10)).await, [id(0), id(3)]);
    let raw = index.images_with_label("cat", None, 100).await.unwrap();
    assert_eq!(
        raw.hits.len(),
        1,
        "stale entries are deleted, not only hidden"
    );

    // An older message arriving late changes nothing, in the item or the index.
    let mut late = labeled(&images[1], vec![label("Cat", &[])]);
    late.labeled_at = "2000-01-01T00:00:00.000000Z".into();
    p.store_labels(&late).await;
    assert_eq!(all_pages(&p, search("cat", 10)).await, [id(2)]);

    let only_labeled = ImageQuery {
        status: Some(ImageStatus::Rejected),
        ..search("animal", 10)
    };
    assert!(all_pages(&p, only_labeled).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_pages_newest_first_and_filters_by_status() {
    let p = TestPipeline::new("e2e-catalog-gallery").await;

    let images: Vec<ImageRef> = (0..7).map(|n| image_ref(&p, n)).collect();
    for (n, image) in images.iter().enumerate() {
        let status = if n == 3 {
            ImageStatus::Rejected
        } else {
            ImageStatus::Accepted
        };
        ingest(&p, image, status).await;
    }
    for n in [0, 1, 4] {
        let labeled = labeled(&images[n], vec![label("Kite", &[])]);
        p.store_labels(&labeled).await;
    }
    p.table()
        .write_failure(&images[5], ImageStatus::Missing, "deleted")
        .await
        .unwrap();
    let id = |n: usize| images[n].image_id.clone();

    let newest_first: Vec<String> = (0..7).rev().map(id).collect();
    for limit in [1, 3, 7, 50] {
        let query = ImageQuery {
            limit,
            ..ImageQuery::default()
        };
        assert_eq!(all_pages(&p, query).await, newest_first, "pages of {limit}");
    }
    let by_status = |status| ImageQuery {
        status: Some(status),
        limit: 2,
        ..ImageQuery::default()
    };
    assert_eq!(
        all_pages(&p, by_status(ImageStatus::Labeled)).await,
        [id(4), id(1), id(0)]
    );
    assert_eq!(
        all_pages(&p, by_status(ImageStatus::Rejected)).await,
        [id(3)]
    );
    assert_eq!(
        all_pages(&p, by_status(ImageStatus::Missing)).await,
        [id(5)]
    );
    assert_eq!(
        all_pages(&p, by_status(ImageStatus::Accepted)).await,
        [id(6), id(2)]
    );
    // Every image is under exactly one status: the status partitions add up to the gallery.
    let mut under_a_status = Vec::new();
    for status in [
        ImageStatus::Accepted,
        ImageStatus::Labeled,
        ImageStatus::Rejected,
        ImageStatus::Missing,
    ] {
        under_a_status.extend(all_pages(&p, by_status(status)).await);
    }
    let every: HashSet<_> = newest_first.iter().cloned().collect();
    assert_eq!(under_a_status.len(), 7);
    assert_eq!(under_a_status.into_iter().collect::<HashSet<_>>(), every);

    // A cursor is checked, not trusted.
    let first = p
        .catalog()
        .list(&ImageQuery {
            label: Some("kite".into()),
            limit: 1,
            ..ImageQuery::default()
        })
        .await
        .unwrap();
    let wrong = ImageQuery {
        cursor: first.next,
        limit: 1,
        ..ImageQuery::default()
    };
    let error = p.catalog().list(&wrong).await.unwrap_err();
    assert_eq!(error.kind, PortErrorKind::Invalid);
    let garbage = ImageQuery {
        cursor: Some("%%%".into()),
        limit: 1,
        ..ImageQuery::default()
    };
    assert_eq!(
        p.catalog().list(&garbage).await.unwrap_err().kind,
        PortErrorKind::Invalid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_adds_the_console_indexes_to_a_table_from_before_them() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let aws = imgflow_e2e::emulator_clients().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let names = imgflow_runtime::config::Names::new(format!("e2e-upgrade-{}", &suffix[..8]));
    aws.dynamodb
        .create_table()
        .table_name(&names.table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    imgflow_operations::provision::provision(&aws, &names, &Default::default())
        .await
        .unwrap();
    let table = aws
        .dynamodb
        .describe_table()
        .table_name(&names.table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let mut indexes: Vec<_> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["by_day", "by_status"]);

    // An item written before the console: no gallery keys, no label entries. `reindex` adds
    // both, and running it again changes nothing.
    let mut old = ImageRecord::new(
        "0123456789abcdef0123456789abcdef".into(),
        names.bucket.clone(),
        "incoming/old.jpg".into(),
        "e".into(),
        clock::now_rfc3339(),
        ImageStatus::Labeled,
    );
    old.labeled_at = Some(clock::now_rfc3339());
    old.labels = Some(vec![label("Horse", &["Animal"])]);
    let aws_sdk_dynamodb::types::AttributeValue::M(item) =
        imgflow_aws::dynamodb::codec::to_attribute(&old).unwrap()
    else {
        unreachable!()
    };
    aws.dynamodb
        .put_item()
        .table_name(&names.table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    let table = aws.image_table(&names);
    let catalog = aws.catalog(&names);
    let everything = ImageQuery {
        limit: 10,
        ..ImageQuery::default()
    };
    assert!(catalog.list(&everything).await.unwrap().images.is_empty());
    for _ in 0..2 {
        let report = table.reindex(&aws.index_table(&names)).await.unwrap();
        assert_eq!((report.items, report.labeled), (1, 1));
    }
    let ids = |page: ImagePage| -> Vec<String> { page.images.into_iter().map(|r| r.id).collect() };
    assert_eq!(
        ids(catalog.list(&everything).await.unwrap()),
        [old.id.clone()]
    );
    assert_eq!(
        ids(catalog.list(&search("animal", 10)).await.unwrap()),
        [old.id.clone()]
    );
    let labeled = ImageQuery {
        status: Some(ImageStatus::Labeled),
        ..everything
    };
    assert_eq!(ids(catalog.list(&labeled).await.unwrap()), [old.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_keyed_before_sharding_stay_listed_and_reindex_moves_them_to_their_shard() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let p = TestPipeline::new("e2e-catalog-unsharded").await;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let image = image_ref(&p, 7);
    let day = &image.received_at[..10];
    let labeled_at = clock::now_rfc3339();
    let mut old = ImageRecord::new(
        image.image_id.clone(),
        image.bucket.clone(),
        image.key.clone(),
        image.etag.clone(),
        image.received_at.clone(),
        ImageStatus::Labeled,
    );
    old.labeled_at = Some(labeled_at.clone());
    old.labels = Some(vec![label("Horse", &[])]);
    // The item and its label entry as they were keyed before the shards: one partition per
    // day, per status and day, per label.
    let AttributeValue::M(mut item) = imgflow_aws::dynamodb::codec::to_attribute(&old).unwrap()
    else {
        unreachable!()
    };
    item.insert("day".into(), s(day));
    item.insert("status_day".into(), s(&format!("labeled#{day}")));
    let received_key = format!("{}#{}", image.received_at, image.image_id);
    item.insert("received_key".into(), s(&received_key));
    let aws = &p.aws;
    aws.dynamodb
        .put_item()
        .table_name(&p.names.table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    aws.dynamodb
        .put_item()
        .table_name(&p.names.index_table)
        .item("pk", s("label#horse"))
        .item("sk", s(&format!("{labeled_at}#{}", image.image_id)))
        .item("name", s("Horse"))
        .item("image_id", s(&image.image_id))
        .item("labeled_at", s(&labeled_at))
        .item("confidence", AttributeValue::N("90".into()))
        .send()
        .await
        .unwrap();

    let ids = |page: ImagePage| -> Vec<String> { page.images.into_iter().map(|r| r.id).collect() };
    let everything = ImageQuery {
        limit: 10,
        ..ImageQuery::default()
    };
    let labeled = ImageQuery {
        status: Some(ImageStatus::Labeled),
        ..everything.clone()
    };
    let listed = |catalog: imgflow_aws::dynamodb::catalog::DynamoCatalog| {
        let (everything, labeled) = (everything.clone(), labeled.clone());
        async move {
            [
                ids(catalog.list(&everything).await.unwrap()),
                ids(catalog.list(&labeled).await.unwrap()),
                ids(catalog.list(&search("HORSE", 10)).await.unwrap()),
            ]
        }
    };
    let once = vec![image.image_id.clone()];
    assert_eq!(
        listed(p.catalog()).await,
        [once.clone(), once.clone(), once.clone()],
        "reads include the unsharded partitions"
    );

    let report = p
        .aws
        .image_table(&p.names)
        .reindex(&aws.index_table(&p.names))
        .await
        .unwrap();
    assert_eq!((report.keyed, report.labeled), (1, 1));
    let item = aws
        .dynamodb
        .get_item()
        .table_name(&p.names.table)
        .key("id", s(&image.image_id))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let keys = imgflow_catalog::keys::GalleryKeys::of(&old).unwrap();
    assert_eq!(item["day"], s(&keys.day), "moved to its shard");
    assert_eq!(item["status_day"], s(&keys.status_day));
    assert_ne!(keys.day, day);
    assert_eq!(
        listed(p.catalog()).await,
        [once.clone(), once.clone(), once],
        "listed once, though its label now has an entry in both partitions"
    );
    let again = p
        .aws
        .image_table(&p.names)
        .reindex(&aws.index_table(&p.names))
        .await
        .unwrap();
    assert_eq!(again.keyed, 0, "a sharded item is left as it is");
}

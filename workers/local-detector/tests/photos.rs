//! The local models on real photos that ship in registry packages (scikit-image's wheel,
//! Debian's darknet; `scripts/fetch-photos` unpacks the ones not committed).
use std::{path::PathBuf, sync::OnceLock};

use imgflow_local_detector::{default_models_dir, engine::EngineChoice, Models};
use imgflow_messages::Label;

fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| Models::load(&default_models_dir()).expect("loading the local models"))
}

fn photo(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        root.join("tests/fixtures/photos").join(name),
        std::env::var_os("IMGFLOW_PHOTOS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/photos"))
            .join(name),
    ];
    candidates
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_else(|| panic!("{name} not found in {candidates:?}; run scripts/fetch-photos"))
}

fn labels(name: &str) -> Vec<Label> {
    let detection = models().label(&photo(name), 10, 55.0).expect("labelling");
    assert!(detection
        .label_model_version
        .starts_with("nanodet-m+efficientnet-lite0/"));
    detection.labels
}

fn names(labels: &[Label]) -> Vec<&str> {
    labels.iter().map(|l| l.name.as_str()).collect()
}

fn assert_has(photo: &str, expected: &[&str]) -> Vec<Label> {
    let found = labels(photo);
    for name in expected {
        assert!(
            names(&found).contains(name),
            "{photo}: expected {name} among {:?}",
            names(&found)
        );
    }
    found
}

#[test]
fn chelsea_is_a_cat_with_its_parents() {
    let found = assert_has("chelsea.png", &["Cat", "Animal", "Mammal"]);
    let cat = found.iter().find(|l| l.name == "Cat").unwrap();
    let parents: Vec<_> = cat.parents.iter().map(|p| p.name.as_str()).collect();
    assert!(
        parents.contains(&"Animal") && parents.contains(&"Mammal"),
        "{parents:?}"
    );
    assert!(cat.categories.iter().any(|c| c.name == "Animals and Pets"));
}

#[test]
fn coffee_is_a_cup_or_coffee() {
    let found = labels("coffee.png");
    assert!(
        names(&found).iter().any(|n| *n == "Cup" || *n == "Coffee"),
        "{:?}",
        names(&found)
    );
}

#[test]
fn astronaut_is_a_person_with_a_box() {
    let found = assert_has("astronaut.png", &["Person"]);
    let person = found.iter().find(|l| l.name == "Person").unwrap();
    assert!(!person.instances.is_empty());
    let b = person.instances[0].bounding_box;
    assert!(b.width > 0.3 && b.height > 0.5, "{b:?}");
    assert!(
        b.left >= 0.0 && b.top >= 0.0 && b.left + b.width <= 1.0001 && b.top + b.height <= 1.0001
    );
}

#[test]
fn a_rocket_on_its_launch_pad_is_a_rocket_not_a_weapon() {
    let found = assert_has("rocket.jpg", &["Rocket", "Vehicle"]);
    assert!(!names(&found).contains(&"Weapon"), "{:?}", names(&found));
}

#[test]
fn motorcycle_is_a_motorcycle() {
    assert_has("motorcycle_left.png", &["Motorcycle"]);
}

#[test]
fn dog_is_a_dog() {
    assert_has("dog.jpg", &["Dog"]);
}

#[test]
fn giraffe_is_a_giraffe() {
    assert_has("giraffe.jpg", &["Giraffe"]);
}

#[test]
fn eagle_is_a_bird() {
    assert_has("eagle.jpg", &["Bird"]);
}

#[test]
fn kite_has_a_kite_and_a_person() {
    assert_has("kite.jpg", &["Kite", "Person"]);
}

#[test]
fn labels_respect_max_labels_and_min_confidence() {
    let few = models().label(&photo("kite.jpg"), 2, 0.0).unwrap().labels;
    assert_eq!(few.len(), 2);
    let strict = models()
        .label(&photo("kite.jpg"), 100, 90.0)
        .unwrap()
        .labels;
    assert!(strict.iter().all(|l| l.confidence >= 90.0));
}

#[test]
fn a_corrupt_image_is_invalid_not_a_crash() {
    let mut cut = photo("chelsea.png");
    cut.truncate(1000);
    let err = models().label(&cut, 10, 55.0).unwrap_err();
    assert_eq!(err.kind, imgflow_runtime::PortErrorKind::Invalid);
}

/// The same models on ONNX Runtime (`IMGFLOW_ONNXRUNTIME_LIB`, which `scripts/test` sets).
fn models_on_onnxruntime() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let library = std::env::var_os("IMGFLOW_ONNXRUNTIME_LIB").expect(
            "IMGFLOW_ONNXRUNTIME_LIB is unset: run scripts/test, or export \
             IMGFLOW_ONNXRUNTIME_LIB=$(scripts/onnxruntime)",
        );
        let engine = EngineChoice::OnnxRuntime {
            library: library.into(),
        };
        Models::load_on(&default_models_dir(), engine).expect("loading the models on ONNX Runtime")
    })
}

const PHOTOS: [&str; 9] = [
    "chelsea.png",
    "coffee.png",
    "astronaut.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "dog.jpg",
    "giraffe.jpg",
    "eagle.jpg",
    "kite.jpg",
];

#[test]
fn onnxruntime_gives_the_same_labels_and_boxes_as_tract() {
    let onnxruntime = models_on_onnxruntime();
    assert_eq!(onnxruntime.engine.name(), "onnxruntime");
    assert_eq!(onnxruntime.version(), models().version());
    for name in PHOTOS {
        let bytes = photo(name);
        // Everything above 20%, so a label near the usual 55% cut cannot hide a difference.
        let tract = models().label(&bytes, 50, 20.0).unwrap().labels;
        let other = onnxruntime.label(&bytes, 50, 20.0).unwrap().labels;
        assert_eq!(names(&tract), names(&other), "{name}");
        assert!(!tract.is_empty(), "{name}: no label at all");
        for (a, b) in tract.iter().zip(&other) {
            // Float sums in another order: far below a tenth of a percentage point.
            assert!(
                (a.confidence - b.confidence).abs() < 0.1,
                "{name} {}: {} vs {}",
                a.name,
                a.confidence,
                b.confidence
            );
            assert_eq!(a.instances.len(), b.instances.len(), "{name} {}", a.name);
            for (x, y) in a.instances.iter().zip(&b.instances) {
                let (x, y) = (x.bounding_box, y.bounding_box);
                let gap = [
                    x.left - y.left,
                    x.top - y.top,
                    x.width - y.width,
                    x.height - y.height,
                ]
                .map(f32::abs)
                .into_iter()
                .fold(0.0, f32::max);
                assert!(gap < 0.002, "{name} {}: {x:?} vs {y:?}", a.name);
            }
        }
    }
}

#[test]
fn onnxruntime_rejects_a_corrupt_image_like_tract() {
    let mut cut = photo("coffee.png");
    cut.truncate(1000);
    let err = models_on_onnxruntime().label(&cut, 10, 55.0).unwrap_err();
    assert_eq!(err.kind, imgflow_runtime::PortErrorKind::Invalid);
}

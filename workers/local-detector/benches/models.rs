//! Per-image latency of each local model (inference only, one thread) and of a whole
//! `Models::label` call (decode, both models, label merge), on the test photos.
//! Writes `target/bench/local-models-tract.json` for `scripts/bench`, which adds the same ONNX
//! models under onnxruntime as the reference.
//!
//! `cargo bench -p imgflow-local-detector` (after `scripts/fetch-photos`).
use std::{path::PathBuf, time::Instant};

use imgflow_local_detector::{default_models_dir, image_input, Models};

const PHOTOS: [&str; 8] = [
    "chelsea.png",
    "coffee.png",
    "astronaut.png",
    "motorcycle_left.png",
    "dog.jpg",
    "giraffe.jpg",
    "eagle.jpg",
    "kite.jpg",
];
const ROUNDS: usize = 10;

fn photo(root: &std::path::Path, name: &str) -> Vec<u8> {
    [
        root.join("tests/fixtures/photos").join(name),
        root.join("target/photos").join(name),
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok())
    .unwrap_or_else(|| panic!("{name} missing: run scripts/fetch-photos"))
}

struct Stats {
    median_ms: f64,
    p95_ms: f64,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats {
        median_ms: at(0.5),
        p95_ms: at(0.95),
    }
}

fn time<T>(samples: &mut Vec<f64>, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    samples.push(start.elapsed().as_secs_f64() * 1000.0);
    out
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let load_start = Instant::now();
    let models = Models::load(&default_models_dir()).expect("loading models");
    let load_ms = load_start.elapsed().as_secs_f64() * 1000.0;
    let encoded: Vec<Vec<u8>> = PHOTOS.iter().map(|p| photo(&root, p)).collect();
    let prepared: Vec<_> = encoded
        .iter()
        .map(|e| image_input::decode(e, imgflow_imaging::DEFAULT_MAX_DECODED_BYTES).unwrap())
        .collect();

    let (mut classifier, mut detector, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS + 2 {
        let warmup = round < 2;
        for (image, bytes) in prepared.iter().zip(&encoded) {
            let (mut c, mut d, mut w) = (Vec::new(), Vec::new(), Vec::new());
            let input = models.classifier.input(image);
            time(&mut c, || models.classifier.infer(input).unwrap());
            let input = models.objects.input(image);
            time(&mut d, || models.objects.infer(input).unwrap());
            time(&mut w, || models.label(bytes, 10, 55.0).unwrap());
            if !warmup {
                classifier.extend(c);
                detector.extend(d);
                whole.extend(w);
            }
        }
    }
    let rows = [
        ("efficientnet-lite0", stats(classifier)),
        ("nanodet-m", stats(detector)),
        ("label (decode + both + merge)", stats(whole)),
    ];
    println!("local models on tract, one thread, {} photos × {ROUNDS} rounds (model load {load_ms:.0} ms)", PHOTOS.len());
    println!(
        "{:<32} {:>10} {:>10} {:>16}",
        "model", "median ms", "p95 ms", "images/s/core"
    );
    let mut json = Vec::new();
    for (name, s) in &rows {
        let per_core = 1000.0 / s.median_ms;
        println!(
            "{name:<32} {:>10.2} {:>10.2} {per_core:>16.1}",
            s.median_ms, s.p95_ms
        );
        json.push(format!(
            "{{\"model\": \"{name}\", \"median_ms\": {:.3}, \"p95_ms\": {:.3}, \"images_per_sec_per_core\": {per_core:.2}}}",
            s.median_ms, s.p95_ms
        ));
    }
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let body = format!(
        "{{\"engine\": \"tract\", \"load_ms\": {load_ms:.1}, \"results\": [{}]}}\n",
        json.join(", ")
    );
    std::fs::write(out.join("local-models-tract.json"), body).unwrap();
}

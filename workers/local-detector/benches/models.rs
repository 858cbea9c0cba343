//! Per-image latency of the local detector's steps on the test photos, one thread: decoding and
//! the two model inputs, each model's inference, and a whole `Models::label` call; on tract and,
//! when `IMGFLOW_ONNXRUNTIME_LIB` is set, on ONNX Runtime, side by side in one run.
//! Writes `target/bench/local-models-tract.json` for `scripts/bench`, which adds the same ONNX
//! models under onnxruntime's own Python package as the reference.
//!
//! `cargo bench -p imgflow-local-detector` (after `scripts/fetch-photos`).
use std::{path::PathBuf, time::Instant};

use imgflow_local_detector::{default_models_dir, engine::EngineChoice, image_input, Models};

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

/// One engine's samples, in milliseconds.
#[derive(Default)]
struct Samples {
    preprocess: Vec<f64>,
    classifier: Vec<f64>,
    detector: Vec<f64>,
    whole: Vec<f64>,
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut engines = vec![EngineChoice::Tract];
    if let Some(library) = std::env::var_os("IMGFLOW_ONNXRUNTIME_LIB") {
        engines.push(EngineChoice::OnnxRuntime {
            library: library.into(),
        });
    } else {
        eprintln!("IMGFLOW_ONNXRUNTIME_LIB unset: tract only (scripts/bench local-models sets it)");
    }
    let loaded: Vec<(Models, f64)> = engines
        .into_iter()
        .map(|engine| {
            let start = Instant::now();
            let models = Models::load_on(&default_models_dir(), engine).expect("loading models");
            (models, start.elapsed().as_secs_f64() * 1000.0)
        })
        .collect();
    let encoded: Vec<Vec<u8>> = PHOTOS.iter().map(|p| photo(&root, p)).collect();

    // Engines take turns on each photo, so both see the same machine noise.
    let mut samples: Vec<Samples> = loaded.iter().map(|_| Samples::default()).collect();
    for round in 0..ROUNDS + 2 {
        let warmup = round < 2;
        for bytes in &encoded {
            for ((models, _), samples) in loaded.iter().zip(&mut samples) {
                let mut s = Samples::default();
                let (classifier_input, detector_input) = time(&mut s.preprocess, || {
                    let image =
                        image_input::decode(bytes, imgflow_imaging::DEFAULT_MAX_DECODED_BYTES)
                            .unwrap();
                    (
                        models.classifier.input(&image).unwrap(),
                        models.objects.input(&image).unwrap(),
                    )
                });
                time(&mut s.classifier, || {
                    models.classifier.infer(classifier_input).unwrap()
                });
                time(&mut s.detector, || {
                    models.objects.infer(detector_input).unwrap()
                });
                time(&mut s.whole, || models.label(bytes, 10, 55.0).unwrap());
                if !warmup {
                    samples.preprocess.extend(s.preprocess);
                    samples.classifier.extend(s.classifier);
                    samples.detector.extend(s.detector);
                    samples.whole.extend(s.whole);
                }
            }
        }
    }

    println!(
        "local models, one thread, {} photos × {ROUNDS} rounds",
        PHOTOS.len()
    );
    println!(
        "{:<12} {:<38} {:>10} {:>10} {:>14}",
        "engine", "step", "median ms", "p95 ms", "images/s/core"
    );
    let mut json = Vec::new();
    let mut loads = Vec::new();
    for ((models, load_ms), samples) in loaded.iter().zip(samples) {
        let engine = models.engine.name();
        loads.push(format!("\"{engine}\": {load_ms:.1}"));
        let rows = [
            ("decode + both inputs", samples.preprocess),
            ("efficientnet-lite0", samples.classifier),
            ("nanodet-m", samples.detector),
            ("label (decode + both + merge)", samples.whole),
        ];
        for (name, values) in rows {
            let s = stats(values);
            let per_core = 1000.0 / s.median_ms;
            println!(
                "{engine:<12} {name:<38} {:>10.2} {:>10.2} {per_core:>14.1}",
                s.median_ms, s.p95_ms
            );
            json.push(format!(
                "{{\"engine\": \"{engine}\", \"model\": \"{name}\", \"median_ms\": {:.3}, \"p95_ms\": {:.3}, \"images_per_sec_per_core\": {per_core:.2}}}",
                s.median_ms, s.p95_ms
            ));
        }
    }
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let body = format!(
        "{{\"load_ms\": {{{}}}, \"results\": [{}]}}\n",
        loads.join(", "),
        json.join(", ")
    );
    std::fs::write(out.join("local-models-tract.json"), body).unwrap();
}

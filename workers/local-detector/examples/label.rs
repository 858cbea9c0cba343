//! Labels local image files with the local models and prints them:
//! `cargo run -p imgflow-local-detector --example label -- FILE...`
//! (on ONNX Runtime with `IMGFLOW_LOCAL_ENGINE=onnxruntime IMGFLOW_ONNXRUNTIME_LIB=$(scripts/onnxruntime)`)
use imgflow_local_detector::{default_models_dir, engine::EngineChoice, Models};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let models = Models::load_on(&default_models_dir(), EngineChoice::from_env()?)?;
    for path in std::env::args().skip(1) {
        let detection = models.label(&std::fs::read(&path)?, 10, 55.0)?;
        println!("{path}");
        for label in detection.labels {
            let parents: Vec<_> = label.parents.iter().map(|p| p.name.as_str()).collect();
            println!(
                "  {:<20} {:5.1}%  {} box(es)  parents: {}",
                label.name,
                label.confidence,
                label.instances.len(),
                parents.join(", ")
            );
        }
    }
    Ok(())
}

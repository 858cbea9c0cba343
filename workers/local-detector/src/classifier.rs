//! EfficientNet-Lite0: what the picture shows, as probabilities over 1,000 ImageNet classes.
use std::path::Path;

use crate::{
    engine::{EngineChoice, Input, Plan},
    image_input, LoadError,
};

const SIDE: u32 = 224;
/// The TensorFlow Lite models' input normalisation: (x − 127) / 128, RGB.
const MEAN: [f32; 3] = [127.0; 3];
const STD: [f32; 3] = [128.0; 3];
/// Share of the shorter side kept by the centre crop (the models' training crop).
const CROP: f32 = 0.875;

/// The classifier, loaded and optimised once.
pub struct Classifier {
    plan: Plan,
}

impl Classifier {
    /// Loads the ONNX file on `engine`.
    pub fn load(engine: &EngineChoice, path: &Path) -> Result<Self, LoadError> {
        let plan = Plan::load(engine, path, SIDE as usize)?;
        Ok(Self { plan })
    }

    /// Probabilities of the 1,000 classes.
    pub fn classify(&self, image: &image_input::Prepared) -> Result<Vec<f32>, String> {
        self.infer(self.input(image)?)
    }

    /// The model input: centre crop, resize, normalise.
    pub fn input(&self, image: &image_input::Prepared) -> Result<Input, String> {
        let (w, h) = image.rgb.dimensions();
        let side = ((w.min(h) as f32) * CROP).round().max(1.0) as u32;
        let crop = image_input::Region {
            left: (w - side) / 2,
            top: (h - side) / 2,
            width: side,
            height: side,
        };
        image_input::tensor(&image.rgb, crop, SIDE, [0, 1, 2], MEAN, STD)
    }

    /// Runs the model on a prepared input.
    pub fn infer(&self, input: Input) -> Result<Vec<f32>, String> {
        let mut outputs = self.plan.run(input)?;
        if outputs.is_empty() {
            return Err("the classifier gave no output".to_owned());
        }
        Ok(outputs.swap_remove(0).values)
    }
}

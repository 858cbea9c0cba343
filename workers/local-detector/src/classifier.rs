//! EfficientNet-Lite0: what the picture shows, as probabilities over 1,000 ImageNet classes.
use std::{path::Path, sync::Arc};

use image::imageops;
use tract_onnx::prelude::*;

use crate::{image_input, LoadError};

const SIDE: u32 = 224;
/// The TensorFlow Lite models' input normalisation: (x − 127) / 128, RGB.
const MEAN: [f32; 3] = [127.0; 3];
const STD: [f32; 3] = [128.0; 3];
/// Share of the shorter side kept by the centre crop (the models' training crop).
const CROP: f32 = 0.875;

/// The classifier, loaded and optimised once.
pub struct Classifier {
    plan: Arc<TypedRunnableModel>,
}

impl Classifier {
    /// Loads the ONNX file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let plan = image_input::load_model(path, SIDE as usize)?;
        Ok(Self { plan })
    }

    /// Probabilities of the 1,000 classes.
    pub fn classify(&self, image: &image_input::Prepared) -> Result<Vec<f32>, String> {
        self.infer(self.input(image))
    }

    /// The model input: centre crop, resize, normalise.
    pub fn input(&self, image: &image_input::Prepared) -> Tensor {
        let (w, h) = image.rgb.dimensions();
        let side = ((w.min(h) as f32) * CROP).round().max(1.0) as u32;
        let crop =
            imageops::crop_imm(&image.rgb, (w - side) / 2, (h - side) / 2, side, side).to_image();
        image_input::tensor(&crop, SIDE, [0, 1, 2], MEAN, STD)
    }

    /// Runs the model on a prepared input.
    pub fn infer(&self, input: Tensor) -> Result<Vec<f32>, String> {
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| format!("{e:#}"))?;
        let probabilities = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| format!("{e:#}"))?;
        Ok(probabilities.iter().copied().collect())
    }
}

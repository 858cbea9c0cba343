//! NanoDet-m: COCO objects with boxes.
//!
//! Outputs, per stride 8, 16 and 32 (52², 26² and 13² cells): sigmoid class scores `[cells, 80]`
//! and Generalized Focal Loss box bins `[cells, 4 × 11]`. Each side's distance from the cell
//! centre is the expectation of a softmax over 11 bins, in units of the stride.
use std::path::Path;

use crate::{
    engine::{EngineChoice, Input, Plan},
    image_input, LoadError,
};

const SIDE: usize = 416;
const STRIDES: [usize; 3] = [8, 16, 32];
const BINS: usize = 11;
const CLASSES: usize = 80;
/// Upstream NanoDet normalisation, in BGR order.
const MEAN_BGR: [f32; 3] = [103.53, 116.28, 123.675];
const STD_BGR: [f32; 3] = [57.375, 57.12, 58.395];
/// Boxes below this score are not considered at all.
pub const MIN_SCORE: f32 = 0.35;
const NMS_IOU: f32 = 0.5;
const MAX_PER_CLASS: usize = 20;

/// One detected object, its box in ratios of the image (Rekognition's convention).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// COCO class index.
    pub class: usize,
    /// Sigmoid score, 0–1.
    pub score: f32,
    /// Left, top, right, bottom as ratios of the image's width and height.
    pub ltrb: [f32; 4],
}

/// The detector, loaded and optimised once.
pub struct ObjectDetector {
    plan: Plan,
}

impl ObjectDetector {
    /// Loads the ONNX file on `engine`.
    pub fn load(engine: &EngineChoice, path: &Path) -> Result<Self, LoadError> {
        let plan = Plan::load(engine, path, SIDE)?;
        Ok(Self { plan })
    }

    /// Objects in the image after per-class non-maximum suppression, best first.
    pub fn detect(&self, image: &image_input::Prepared) -> Result<Vec<Found>, String> {
        self.infer(self.input(image)?)
    }

    /// The model input: the image stretched to the square input, BGR, normalised. Ratios in the
    /// stretched image are ratios in the original.
    pub fn input(&self, image: &image_input::Prepared) -> Result<Input, String> {
        let whole = image_input::Region::whole(&image.rgb);
        image_input::tensor(&image.rgb, whole, SIDE as u32, [2, 1, 0], MEAN_BGR, STD_BGR)
    }

    /// Runs the model on a prepared input and decodes its boxes.
    pub fn infer(&self, input: Input) -> Result<Vec<Found>, String> {
        let outputs = self.plan.run(input)?;
        let mut found = Vec::new();
        for stride in STRIDES {
            let cells = (SIDE / stride) * (SIDE / stride);
            let pick = |width: usize| {
                outputs
                    .iter()
                    .find(|o| o.shape == [1, cells, width])
                    .map(|o| o.values.as_slice())
                    .ok_or_else(|| format!("no output of shape [1, {cells}, {width}]"))
            };
            decode_level(stride, pick(CLASSES)?, pick(4 * BINS)?, &mut found);
        }
        Ok(non_max_suppression(found))
    }
}

fn decode_level(stride: usize, scores: &[f32], bins: &[f32], out: &mut Vec<Found>) {
    let side = SIDE / stride;
    for cell in 0..side * side {
        let row = &scores[cell * CLASSES..(cell + 1) * CLASSES];
        let (class, &score) = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("80 classes");
        if score < MIN_SCORE {
            continue;
        }
        let cx = ((cell % side) as f32 + 0.5) * stride as f32;
        let cy = ((cell / side) as f32 + 0.5) * stride as f32;
        let mut distance = [0.0f32; 4];
        for (side_index, d) in distance.iter_mut().enumerate() {
            let start = cell * 4 * BINS + side_index * BINS;
            *d = expected_bin(&bins[start..start + BINS]) * stride as f32;
        }
        let size = SIDE as f32;
        let clamp = |v: f32| (v / size).clamp(0.0, 1.0);
        out.push(Found {
            class,
            score,
            ltrb: [
                clamp(cx - distance[0]),
                clamp(cy - distance[1]),
                clamp(cx + distance[2]),
                clamp(cy + distance[3]),
            ],
        });
    }
}

/// The expectation of a softmax over bins 0..n.
fn expected_bin(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f32 = weights.iter().sum();
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| i as f32 * w)
        .sum::<f32>()
        / total
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Keeps the best box of each overlapping group, per class.
pub fn non_max_suppression(mut found: Vec<Found>) -> Vec<Found> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Found> = Vec::new();
    for candidate in found {
        let same_class = kept.iter().filter(|k| k.class == candidate.class);
        if same_class.clone().count() >= MAX_PER_CLASS {
            continue;
        }
        if same_class
            .into_iter()
            .all(|k| iou(&k.ltrb, &candidate.ltrb) <= NMS_IOU)
        {
            kept.push(candidate);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peaked_bin_distribution_gives_that_bin() {
        let mut logits = [-20.0f32; BINS];
        logits[3] = 20.0;
        assert!((expected_bin(&logits) - 3.0).abs() < 1e-3);
        assert!(
            (expected_bin(&[0.0; BINS]) - 5.0).abs() < 1e-3,
            "uniform → middle"
        );
    }

    #[test]
    fn overlapping_boxes_of_one_class_collapse_but_other_classes_stay() {
        let b = |class, score, x: f32| Found {
            class,
            score,
            ltrb: [x, 0.0, x + 0.5, 0.5],
        };
        let kept = non_max_suppression(vec![
            b(0, 0.6, 0.0),
            b(0, 0.9, 0.01),
            b(1, 0.5, 0.0),
            b(0, 0.7, 0.5),
        ]);
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0].score, 0.9);
        assert!(kept.iter().any(|k| k.class == 1));
        assert!(
            kept.iter().any(|k| k.score == 0.7),
            "a separate object of the same class stays"
        );
    }
}

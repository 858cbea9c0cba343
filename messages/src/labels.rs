//! Labels in exactly the shape of Rekognition DetectLabels, so consumers written against
//! Rekognition read imgflow's output unchanged, whichever detector produced it.
//! <https://docs.aws.amazon.com/rekognition/latest/APIReference/API_DetectLabels.html>
use serde::{Deserialize, Serialize};

/// One detected label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Label {
    /// Name, in Rekognition's Title Case (`Dining Table`).
    pub name: String,
    /// Confidence in percent, 0–100.
    pub confidence: f32,
    /// Where the object is, for labels of things that have a place in the image.
    #[serde(default)]
    pub instances: Vec<Instance>,
    /// More general labels (`Cat` → `Animal`, `Mammal`, `Pet`).
    #[serde(default)]
    pub parents: Vec<NamedRef>,
    /// Rekognition's label categories (`Animals and Pets`).
    #[serde(default)]
    pub categories: Vec<NamedRef>,
}

/// One occurrence of a label in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Instance {
    /// Where the occurrence is, as ratios of the image's width and height.
    pub bounding_box: BoundingBox,
    /// Confidence in percent, 0–100.
    pub confidence: f32,
}

/// A box in ratios of the image size (0–1), origin at the top left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BoundingBox {
    /// Width as a ratio of the image width.
    pub width: f32,
    /// Height as a ratio of the image height.
    pub height: f32,
    /// Left edge as a ratio of the image width.
    pub left: f32,
    /// Top edge as a ratio of the image height.
    pub top: f32,
}

/// `{"Name": ...}`, Rekognition's shape for parents, aliases and categories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NamedRef {
    /// The referenced name.
    pub name: String,
}

impl NamedRef {
    /// A reference to `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

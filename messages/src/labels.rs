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

/// Most instances kept per label, most confident first (a crowd's `Person`).
pub const MAX_INSTANCES: usize = 100;
/// Most parents, and most categories, kept per label.
pub const MAX_REFS: usize = 16;
/// Longest name kept, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Most bytes of one image's labels as JSON. An item may hold two label sets at once (the
/// stored labels and, during a relabel, the kept detection of the new ones), under DynamoDB's
/// 400 KB item limit with room for the rest of the item, and an `ImageLabeled` message must
/// stay under SNS's 256 KiB.
pub const MAX_LABELS_JSON_BYTES: usize = 160 * 1024;

/// What [`bound_labels`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Whole labels dropped (the least confident), to fit [`MAX_LABELS_JSON_BYTES`].
    pub labels: usize,
    /// Instances, parents and categories dropped, and names cut.
    pub parts: usize,
}

/// The names a detector writes into an image's `detector`: Amazon Rekognition, the local
/// models, and the benchmark's fixed stand-in. What `imgflow relabel --detector` accepts.
pub const DETECTORS: [&str; 3] = ["rekognition", "local", "fixed"];

/// Bounds a detector's answer for storage and messages: names cut to [`MAX_NAME_CHARS`], at
/// most [`MAX_INSTANCES`] instances and [`MAX_REFS`] parents and categories per label, then the
/// least confident labels dropped until the whole fits [`MAX_LABELS_JSON_BYTES`].
pub fn bound_labels(labels: &mut Vec<Label>) -> Trimmed {
    let mut trimmed = Trimmed::default();
    let cut = |name: &mut String, trimmed: &mut Trimmed| {
        if let Some((at, _)) = name.char_indices().nth(MAX_NAME_CHARS) {
            name.truncate(at);
            trimmed.parts += 1;
        }
    };
    for label in labels.iter_mut() {
        cut(&mut label.name, &mut trimmed);
        if label.instances.len() > MAX_INSTANCES {
            label
                .instances
                .sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
            trimmed.parts += label.instances.len() - MAX_INSTANCES;
            label.instances.truncate(MAX_INSTANCES);
        }
        for refs in [&mut label.parents, &mut label.categories] {
            trimmed.parts += refs.len().saturating_sub(MAX_REFS);
            refs.truncate(MAX_REFS);
            for r in refs.iter_mut() {
                cut(&mut r.name, &mut trimmed);
            }
        }
    }
    let size = |l: &Label| serde_json::to_vec(l).map_or(0, |v| v.len()) + 1;
    let mut total: usize = labels.iter().map(size).sum::<usize>() + 2;
    if total > MAX_LABELS_JSON_BYTES {
        labels.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        while total > MAX_LABELS_JSON_BYTES {
            let Some(dropped) = labels.pop() else { break };
            total -= size(&dropped);
            trimmed.labels += 1;
        }
    }
    trimmed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn huge_label(n: usize) -> Label {
        Label {
            name: format!("{n:0>300}"),
            confidence: n as f32 / 10.0,
            instances: (0..500)
                .map(|i| Instance {
                    bounding_box: BoundingBox {
                        width: 0.123_456_79,
                        height: 0.123_456_79,
                        left: 0.123_456_79,
                        top: 0.123_456_79,
                    },
                    confidence: i as f32 / 7.0,
                })
                .collect(),
            parents: (0..100)
                .map(|i| NamedRef::new(format!("{i:0>200}")))
                .collect(),
            categories: (0..100)
                .map(|i| NamedRef::new(format!("{i:0>200}")))
                .collect(),
        }
    }

    /// The worst a detector can answer within IMGFLOW_MAX_LABELS's range (1,000 labels, each
    /// with 500 boxes and 100 long parents and categories) fits the bound, keeping the most
    /// confident labels and boxes.
    #[test]
    fn the_worst_detection_fits_the_bound() {
        let mut labels: Vec<Label> = (0..1000).map(huge_label).collect();
        let trimmed = bound_labels(&mut labels);
        let json = serde_json::to_vec(&labels).unwrap();
        assert!(json.len() <= MAX_LABELS_JSON_BYTES, "{} bytes", json.len());
        assert!(trimmed.labels > 0 && trimmed.parts > 0);
        assert_eq!(labels[0].confidence, 99.9, "the most confident first");
        assert!(labels.iter().all(|l| l.instances.len() <= MAX_INSTANCES
            && l.name.chars().count() <= MAX_NAME_CHARS
            && l.parents.len() <= MAX_REFS));
        assert!(labels[0].instances[0].confidence > labels[0].instances[99].confidence);
    }

    #[test]
    fn ordinary_labels_are_untouched() {
        let mut labels = vec![Label {
            name: "Cat".into(),
            confidence: 97.5,
            instances: vec![],
            parents: vec![NamedRef::new("Animal")],
            categories: vec![],
        }];
        let before = labels.clone();
        assert_eq!(bound_labels(&mut labels), Trimmed::default());
        assert_eq!(labels, before);
    }
}

//! The label map and how the two models' answers become Rekognition-style labels.
//!
//! - A classifier class becomes a label with its probability as confidence; each of its
//!   parents becomes a label whose confidence is the summed probability of every class under
//!   it (three cat breeds at 40%, 36% and 17% make `Cat` 93%).
//! - A detected object becomes a label with its box as an instance; its parents become labels
//!   at the object's score.
//! - The same name from both models is one label: the higher confidence, the detector's
//!   instances, the union of parents and categories.
use std::{collections::HashMap, path::Path};

use imgflow_messages::{BoundingBox, Instance, Label, NamedRef};
use serde::Deserialize;

use crate::{objects::Found, LoadError};

/// Classes below this probability are not named on their own (their mass still counts
/// towards their parents).
const LEAF_FLOOR: f32 = 0.01;

#[derive(Debug, Clone, Deserialize)]
struct Entry {
    name: String,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
}

/// `models/labels.json`, built by `scripts/models/build_label_map.py`.
#[derive(Debug, Clone, Deserialize)]
pub struct Vocabulary {
    version: String,
    imagenet: Vec<Entry>,
    coco: Vec<Entry>,
    #[serde(default)]
    parents_of: HashMap<String, Vec<String>>,
}

#[derive(Debug, Default)]
struct Pending {
    confidence: f32,
    instances: Vec<Instance>,
    parents: Vec<String>,
    categories: Vec<String>,
}

/// Adds a candidate label, keeping the highest confidence and every parent and category.
fn add<'a>(
    pending: &'a mut HashMap<String, Pending>,
    name: &str,
    confidence: f32,
    parents: &[String],
    categories: &[String],
) -> &'a mut Pending {
    let p = pending.entry(name.to_owned()).or_default();
    p.confidence = p.confidence.max(confidence.min(100.0));
    union(&mut p.parents, parents, name);
    union(&mut p.categories, categories, "");
    p
}

fn union(into: &mut Vec<String>, more: &[String], except: &str) {
    for m in more {
        if m != except && !into.contains(m) {
            into.push(m.clone());
        }
    }
}

impl Vocabulary {
    /// Reads the map.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Labels {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| LoadError::LabelsFormat {
            path: path.to_owned(),
            source,
        })
    }

    /// The map's version, part of `LabelModelVersion`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Merges the classifier's probabilities and the detector's objects into at most
    /// `max_labels` labels of at least `min_confidence` percent, most confident first.
    pub fn labels(
        &self,
        probabilities: &[f32],
        found: &[Found],
        max_labels: usize,
        min_confidence: f32,
    ) -> Vec<Label> {
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let p = &mut pending;

        let mut parent_mass: HashMap<&str, (f32, Vec<String>)> = HashMap::new();
        for (entry, &probability) in self.imagenet.iter().zip(probabilities) {
            if probability >= LEAF_FLOOR {
                add(
                    p,
                    &entry.name,
                    probability * 100.0,
                    &entry.parents,
                    &entry.categories,
                );
            }
            for parent in &entry.parents {
                let mass = parent_mass.entry(parent).or_default();
                mass.0 += probability;
                union(&mut mass.1, &entry.categories, "");
            }
        }
        for (parent, (mass, categories)) in &parent_mass {
            add(p, parent, mass * 100.0, self.parents_of(parent), categories);
        }

        for object in found {
            let Some(entry) = self.coco.get(object.class) else {
                continue;
            };
            let [left, top, right, bottom] = object.ltrb;
            let instance = Instance {
                bounding_box: BoundingBox {
                    width: right - left,
                    height: bottom - top,
                    left,
                    top,
                },
                confidence: object.score * 100.0,
            };
            add(
                p,
                &entry.name,
                object.score * 100.0,
                &entry.parents,
                &entry.categories,
            )
            .instances
            .push(instance);
            for parent in &entry.parents {
                add(
                    p,
                    parent,
                    object.score * 100.0,
                    self.parents_of(parent),
                    &entry.categories,
                );
            }
        }

        let mut labels: Vec<Label> = pending
            .into_iter()
            .filter(|(_, p)| p.confidence >= min_confidence)
            .map(|(name, p)| Label {
                name,
                confidence: p.confidence,
                instances: p.instances,
                parents: p.parents.into_iter().map(NamedRef::new).collect(),
                categories: p.categories.into_iter().map(NamedRef::new).collect(),
            })
            .collect();
        labels.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then_with(|| a.name.cmp(&b.name))
        });
        labels.truncate(max_labels);
        labels
    }

    fn parents_of(&self, name: &str) -> &[String] {
        self.parents_of.get(name).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> Vocabulary {
        let entry = |name: &str, parents: &[&str]| Entry {
            name: name.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            categories: vec!["Animals and Pets".into()],
        };
        Vocabulary {
            version: "test".into(),
            imagenet: vec![
                entry("Tabby", &["Cat", "Mammal", "Animal"]),
                entry("Tiger Cat", &["Cat", "Mammal", "Animal"]),
                entry("Espresso", &["Coffee"]),
            ],
            coco: vec![
                entry("Cat", &["Animal", "Mammal", "Pet"]),
                entry("Dog", &["Animal"]),
            ],
            parents_of: [(
                "Cat".to_string(),
                vec!["Mammal".to_string(), "Animal".to_string()],
            )]
            .into(),
        }
    }

    #[test]
    fn parents_sum_their_classes_and_merge_with_detected_objects() {
        let found = [Found {
            class: 0,
            score: 0.8,
            ltrb: [0.25, 0.5, 0.75, 1.0],
        }];
        let labels = vocabulary().labels(&[0.4, 0.36, 0.01], &found, 10, 55.0);
        let cat = labels.iter().find(|l| l.name == "Cat").expect("Cat");
        assert!(
            (cat.confidence - 80.0).abs() < 1e-3,
            "max of 76 (summed) and 80 (detected)"
        );
        assert_eq!(cat.instances.len(), 1);
        assert_eq!(cat.instances[0].bounding_box.width, 0.5);
        assert_eq!(cat.instances[0].bounding_box.top, 0.5);
        let parents: Vec<_> = cat.parents.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(parents, vec!["Mammal", "Animal", "Pet"]);
        assert!(labels.iter().all(|l| l.confidence >= 55.0));
        assert!(
            !labels.iter().any(|l| l.name == "Tabby"),
            "40% is under MinConfidence"
        );
        assert!(labels
            .windows(2)
            .all(|w| w[0].confidence >= w[1].confidence));
    }

    #[test]
    fn max_labels_is_honoured() {
        let labels = vocabulary().labels(&[0.5, 0.45, 0.05], &[], 2, 0.0);
        assert_eq!(labels.len(), 2);
    }
}

//! Items ↔ records through JSON: numbers become `N` values (DynamoDB's decimal strings; no
//! float or Decimal workaround), strings `S`, lists `L`, maps `M`; and the UpdateItem
//! expression builder every write goes through.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use imgflow_catalog::keys::GalleryKeys;
use imgflow_messages::ImageRecord;
use imgflow_runtime::{PortError, PortErrorKind};
use serde::Serialize;

pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// An UpdateItem expression with every attribute name aliased, since many of ours (`key`,
/// `status`, `size`) are DynamoDB reserved words.
#[derive(Debug, Default)]
pub(crate) struct Update {
    sets: Vec<String>,
    removes: Vec<String>,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    /// Whether the update names `attribute` already.
    pub(crate) fn mentions(&self, attribute: &str) -> bool {
        self.names.contains_key(&format!("#{attribute}"))
    }

    pub(crate) fn name(&mut self, attribute: &str) -> String {
        let alias = format!("#{attribute}");
        self.names.insert(alias.clone(), attribute.to_owned());
        alias
    }

    pub(crate) fn value(&mut self, attribute: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{attribute}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub(crate) fn set(&mut self, attribute: &str, value: AttributeValue) {
        let (n, v) = (self.name(attribute), self.value(attribute, value));
        self.sets.push(format!("{n} = {v}"));
    }

    pub(crate) fn set_if_not_exists(&mut self, attribute: &str, value: AttributeValue) {
        let (n, v) = (self.name(attribute), self.value(attribute, value));
        self.sets.push(format!("{n} = if_not_exists({n}, {v})"));
    }

    pub(crate) fn remove(&mut self, attribute: &str) {
        let n = self.name(attribute);
        self.removes.push(n);
    }

    /// A condition; every `#name` in it is aliased to the attribute `name`, and each value
    /// given becomes the placeholder `:name`.
    pub(crate) fn condition(&mut self, expression: &str, values: &[(&str, AttributeValue)]) {
        for (name, value) in values {
            self.value(name, value.clone());
        }
        let mut rest = expression;
        while let Some(at) = rest.find('#') {
            let name: String = rest[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + 1 + name.len()..];
            self.name(&name);
        }
        self.condition = Some(expression.to_owned());
    }

    pub(crate) fn build(
        self,
    ) -> (
        String,
        HashMap<String, String>,
        HashMap<String, AttributeValue>,
        Option<String>,
    ) {
        let mut clauses = Vec::new();
        if !self.sets.is_empty() {
            clauses.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.removes.is_empty() {
            clauses.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        (clauses.join(" "), self.names, self.values, self.condition)
    }
}

/// Converts an item into a record.
pub fn item_to_record(item: HashMap<String, AttributeValue>) -> Result<ImageRecord, PortError> {
    let json = serde_json::Value::Object(item.into_iter().map(|(k, v)| (k, to_json(v))).collect());
    serde_json::from_value(json).map_err(|e| {
        PortError::new(
            PortErrorKind::Fatal,
            "decoding an images-table item",
            e.to_string(),
        )
    })
}

/// The record's attributes plus the console indexes' keys derived from them.
pub(crate) fn record_to_item(
    record: &ImageRecord,
) -> Result<HashMap<String, AttributeValue>, PortError> {
    let AttributeValue::M(mut map) = to_attribute(record)? else {
        unreachable!("a record serializes to a map")
    };
    if let Some(keys) = GalleryKeys::of(record) {
        map.insert("day".into(), s(&keys.day));
        map.insert("status_day".into(), s(&keys.status_day));
        map.insert("received_key".into(), s(&keys.received_key));
    }
    Ok(map)
}

/// Any serializable value as an attribute. Goes through JSON text so `f32`s keep their short
/// form (`97.5`, not `97.5000000001`).
pub fn to_attribute<T: Serialize>(value: &T) -> Result<AttributeValue, PortError> {
    let text = serde_json::to_string(value)
        .map_err(|e| PortError::new(PortErrorKind::Fatal, "encoding an item", e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| PortError::new(PortErrorKind::Fatal, "encoding an item", e.to_string()))?;
    Ok(from_json(json))
}

fn from_json(value: serde_json::Value) -> AttributeValue {
    use serde_json::Value;
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(items) => AttributeValue::L(items.into_iter().map(from_json).collect()),
        Value::Object(map) => AttributeValue::M(
            map.into_iter()
                // Absent beats NULL: conditions test attribute_exists.
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, from_json(v)))
                .collect(),
        ),
    }
}

/// An attribute as JSON (numbers as JSON numbers).
pub fn to_json(value: AttributeValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        AttributeValue::S(s) => Value::String(s),
        AttributeValue::N(n) => serde_json::from_str::<serde_json::Number>(&n)
            .map(Value::Number)
            .unwrap_or(Value::String(n)),
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(items) => Value::Array(items.into_iter().map(to_json).collect()),
        AttributeValue::M(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        AttributeValue::Ss(items) => Value::Array(items.into_iter().map(Value::String).collect()),
        AttributeValue::Ns(items) => Value::Array(
            items
                .into_iter()
                .map(|n| to_json(AttributeValue::N(n)))
                .collect(),
        ),
        // Binary attributes are not part of the item contract.
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgflow_messages::{BoundingBox, ImageStatus, Instance, Label, NamedRef};

    fn record() -> ImageRecord {
        ImageRecord {
            id: "abc".into(),
            bucket: "b".into(),
            key: "incoming/a b.png".into(),
            version_id: None,
            etag: "e".into(),
            content_type: Some("image/png".into()),
            size: Some(1234),
            width: Some(100),
            height: Some(80),
            exif: Some([("camera_make".to_owned(), "Canon".to_owned())].into()),
            status: ImageStatus::Labeled,
            reason: None,
            labels: Some(vec![Label {
                name: "Cat".into(),
                confidence: 97.1,
                instances: vec![Instance {
                    bounding_box: BoundingBox {
                        width: 0.5,
                        height: 0.25,
                        left: 0.1,
                        top: 0.2,
                    },
                    confidence: 97.1,
                }],
                parents: vec![NamedRef::new("Animal")],
                categories: vec![],
            }]),
            detector: Some("rekognition".into()),
            label_model_version: Some("3.0".into()),
            trace_id: None,
            received_at: "2026-11-27T03:40:11.532000Z".into(),
            accepted_at: None,
            labeled_at: None,
            duplicate_of: None,
            stored_at: None,
            deleted_at: None,
            ledger_version: Some(3),
            thumbnail: Some(imgflow_messages::Thumbnail {
                key: "thumbnails/abc.jpg".into(),
                width: 320,
                height: 256,
                made_at: None,
                perceptual_hash: None,
            }),
            thumbnail_error: None,
            completed_at: Some("2026-11-27T03:40:12.000000Z".into()),
        }
    }

    #[test]
    fn records_round_trip_through_items_with_numbers_as_n() {
        let item = record_to_item(&record()).unwrap();
        assert_eq!(item["size"], AttributeValue::N("1234".into()));
        assert!(
            !item.contains_key("reason"),
            "absent fields are not written as NULL"
        );
        let AttributeValue::L(labels) = &item["labels"] else {
            panic!("labels is a list")
        };
        let AttributeValue::M(cat) = &labels[0] else {
            panic!("a label is a map")
        };
        assert_eq!(cat["Confidence"], AttributeValue::N("97.1".into()));
        let AttributeValue::M(exif) = &item["exif"] else {
            panic!("exif is a map")
        };
        assert_eq!(exif["camera_make"], s("Canon"));
        let shard = imgflow_catalog::keys::shard_of("abc");
        assert_eq!(
            item["status_day"],
            s(&format!("labeled#2026-11-27#{shard}"))
        );
        assert_eq!(item["day"], s(&format!("2026-11-27#{shard}")));
        assert_eq!(
            item["received_key"],
            s("2026-11-27T03:40:11.532000Z#abc"),
            "the gallery's sort key: time, then id"
        );
        assert_eq!(item_to_record(item).unwrap(), record());
    }

    #[test]
    fn updates_alias_every_name() {
        let mut u = Update::default();
        u.set("status", s("labeled"));
        u.set_if_not_exists("key", s("k"));
        u.remove("reason");
        u.condition(
            "attribute_not_exists(#labeled_at) OR #labeled_at <= :labeled_at",
            &[("labeled_at", s("t"))],
        );
        let (expression, names, values, condition) = u.build();
        assert_eq!(
            expression,
            "SET #status = :status, #key = if_not_exists(#key, :key) REMOVE #reason"
        );
        assert_eq!(names["#labeled_at"], "labeled_at");
        assert!(values.contains_key(":labeled_at"));
        assert!(condition.unwrap().contains("<= :labeled_at"));
    }
}

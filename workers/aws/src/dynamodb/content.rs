//! The content index on the index table: `pk = content#<algorithm>:<checksum>:<size>`,
//! `sk = content`, naming the original image of those bytes (`original`, its object, `etag`,
//! `until`, and `sha256` once a copy computed it). One conditional UpdateItem registers an
//! original or, refused, answers the registered one (`ReturnValuesOnConditionCheckFailure`).
use std::collections::HashMap;

use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};
use imgflow_runtime::{
    ports::{ContentIndex, ContentKey, ObjectLocation, Original},
    PortError, PortErrorKind,
};

use super::{codec::s, codec::Update, dynamodb_error, index::IndexTable};

const CONTENT_SK: &str = "content";

fn content_key(content: &ContentKey) -> HashMap<String, AttributeValue> {
    [
        (
            "pk".to_owned(),
            s(&format!("content#{}", content.as_string())),
        ),
        ("sk".to_owned(), s(CONTENT_SK)),
    ]
    .into()
}

/// The attributes naming `original`.
fn set_original(update: &mut Update, original: &Original) {
    update.set("original", s(&original.image_id));
    update.set("bucket", s(&original.object.bucket));
    update.set("key", s(&original.object.key));
    match &original.object.version_id {
        Some(version) => update.set("version_id", s(version)),
        None => update.remove("version_id"),
    }
    update.set("etag", s(&original.etag));
    update.set("until", s(&original.until));
}

fn original_from(item: &HashMap<String, AttributeValue>) -> Option<Original> {
    let text = |name: &str| item.get(name)?.as_s().ok().cloned();
    Some(Original {
        image_id: text("original")?,
        object: ObjectLocation {
            bucket: text("bucket")?,
            key: text("key")?,
            version_id: text("version_id"),
        },
        etag: text("etag").unwrap_or_default(),
        sha256: text("sha256"),
        until: text("until").unwrap_or_default(),
    })
}

/// What a conditional write of the content item ended with.
enum Written {
    /// The item now names this original.
    Now(Original),
    /// The condition failed; the item as it is (empty when there is none).
    Refused(HashMap<String, AttributeValue>),
}

impl IndexTable {
    async fn write_content(
        &self,
        content: &ContentKey,
        update: Update,
        what: &str,
    ) -> Result<Written, PortError> {
        let (expression, names, values, condition) = update.build();
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(content_key(content)))
            .update_expression(expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let operation = || format!("dynamodb:UpdateItem {} content {what}", self.name());
        match result {
            Ok(output) => original_from(&output.attributes.unwrap_or_default())
                .map(Written::Now)
                .ok_or_else(|| {
                    PortError::new(PortErrorKind::Fatal, operation(), "the item names no image")
                }),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(Written::Refused(refused.item.clone().unwrap_or_default()))
                }
                _ => Err(dynamodb_error(operation(), e)),
            },
        }
    }
}

impl ContentIndex for IndexTable {
    async fn register(
        &self,
        content: &ContentKey,
        candidate: &Original,
    ) -> Result<Original, PortError> {
        // A cached digest is kept: it is the digest of the same bytes.
        let mut update = Update::default();
        set_original(&mut update, candidate);
        update.condition(
            "attribute_not_exists(pk) OR #original = :me",
            &[("me", s(&candidate.image_id))],
        );
        match self.write_content(content, update, "register").await? {
            Written::Now(original) => Ok(original),
            Written::Refused(item) => original_from(&item).ok_or_else(|| {
                PortError::new(
                    PortErrorKind::Retryable,
                    format!("dynamodb:UpdateItem {} content register", self.name()),
                    "refused, yet no registered image came back",
                )
            }),
        }
    }

    async fn take_over(
        &self,
        content: &ContentKey,
        former: &str,
        candidate: &Original,
    ) -> Result<Original, PortError> {
        let mut update = Update::default();
        set_original(&mut update, candidate);
        update.remove("sha256");
        update.condition("#original = :former", &[("former", s(former))]);
        match self.write_content(content, update, "take over").await? {
            Written::Now(original) => Ok(original),
            Written::Refused(item) => match original_from(&item) {
                Some(registered) => Ok(registered),
                // The entry is gone: register afresh.
                None => self.register(content, candidate).await,
            },
        }
    }

    async fn remember_sha256(
        &self,
        content: &ContentKey,
        original: &str,
        sha256: &str,
    ) -> Result<(), PortError> {
        let mut update = Update::default();
        update.set("sha256", s(sha256));
        update.condition("#original = :original", &[("original", s(original))]);
        // Refused: another image took the original's place; its digest is its own business.
        self.write_content(content, update, "sha256").await?;
        Ok(())
    }
}

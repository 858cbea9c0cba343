//! The call counter on the index table: `pk = calls#<scope>`, `sk = <window>`, `used` added to
//! by one conditional UpdateItem per call (refused once the window's limit is reached), and
//! `expires_at` for DynamoDB's TTL.
use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue},
};
use imgflow_runtime::{
    ports::{CallCounter, CallWindow},
    PortError,
};

use super::{dynamodb_error, index::IndexTable};

impl IndexTable {
    fn calls_update(
        &self,
        window: &CallWindow,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client()
            .update_item()
            .table_name(self.name())
            .key("pk", AttributeValue::S(format!("calls#{}", window.scope)))
            .key("sk", AttributeValue::S(window.window.clone()))
            .expression_attribute_names("#used", "used")
    }
}

impl CallCounter for IndexTable {
    async fn take(&self, window: &CallWindow) -> Result<Option<u64>, PortError> {
        let result = self
            .calls_update(window)
            .update_expression("ADD #used :one SET #expires_at = :expires")
            .condition_expression("attribute_not_exists(#used) OR #used < :limit")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(window.limit.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N(window.expires_at.to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output
                .attributes
                .and_then(|a| a.get("used")?.as_n().ok()?.parse().ok())),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(dynamodb_error(
                format!("dynamodb:UpdateItem {} calls#{}", self.name(), window.scope),
                e,
            )),
        }
    }

    async fn give_back(&self, window: &CallWindow) -> Result<(), PortError> {
        self.calls_update(window)
            .update_expression("ADD #used :minus")
            .condition_expression("#used > :zero")
            .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(()),
                _ => Err(dynamodb_error(
                    format!("dynamodb:UpdateItem {} calls#{}", self.name(), window.scope),
                    e,
                )),
            })
    }
}

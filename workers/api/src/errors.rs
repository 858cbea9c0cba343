//! Every error answer: `{"error": "..."}` with a status, and the same text as a page for
//! browsers.
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use imgflow_runtime::PortError;
use serde_json::json;

/// An upstream failure, logged with its cause; the client is told to try again.
pub(crate) fn upstream(what: &str, e: PortError) -> ApiError {
    tracing::error!(error = %e, "{what} failed");
    ApiError(StatusCode::BAD_GATEWAY, format!("{what} failed; try again"))
}

/// An error answer: `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

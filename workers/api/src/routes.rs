//! Routes: `POST /images`, `GET /images/{id}`. (`main.rs` adds `/metrics`, `/healthz`, `/readyz`.)
use std::sync::Arc;

use axum::{
    extract::{DefaultBodyLimit, Path, State},
    http::{header::CONTENT_TYPE, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::Engine;
use bytes::Bytes;
use imgflow_messages::image_id;
use imgflow_runtime::{
    image_probe::{self, Limits, ProbeError},
    ports::{ImageTable, ObjectStore},
};
use serde::Deserialize;
use serde_json::json;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState<S, T> {
    /// The image bucket's store.
    pub store: S,
    /// The images table.
    pub table: T,
    /// The image bucket.
    pub bucket: String,
    /// Where uploads go (`incoming/api/`).
    pub key_prefix: String,
    /// Size and dimension limits, as ingest applies them.
    pub limits: Limits,
}

/// The API's routes on `state`.
pub fn router<S: ObjectStore, T: ImageTable>(state: Arc<ApiState<S, T>>) -> Router {
    // Room for the base64 form (4/3 of the image) plus JSON framing; the decoded image is
    // checked against the limit itself.
    let body_limit = (state.limits.max_bytes as usize) * 4 / 3 + 64 * 1024;
    Router::new()
        .route("/images", post(upload::<S, T>))
        .route("/images/{id}", get(image::<S, T>))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// An error answer: `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Base64Upload {
    base64_image: String,
}

async fn upload<S: ObjectStore, T: ImageTable>(
    State(state): State<Arc<ApiState<S, T>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let image = match content_type.as_str() {
        "image/png" | "image/jpeg" | "image/jpg" => body,
        "application/json" => decode_base64(&body)?,
        other => {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {other:?} is not accepted; send image/png or image/jpeg bytes, or JSON {{\"base64Image\": \"...\"}}"
                ),
            ))
        }
    };
    let size = image.len() as u64;
    if size > state.limits.max_bytes {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "image is {size} bytes; the limit is {} bytes",
                state.limits.max_bytes
            ),
        ));
    }
    // The same checks ingest makes, answered now rather than discovered later.
    let unsupported = |reason: String| ApiError(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason);
    state.limits.check_size(size).map_err(unsupported)?;
    let info = match image_probe::probe(&image) {
        Ok(info) => info,
        Err(ProbeError::Rejected(reason)) => return Err(unsupported(reason)),
        Err(ProbeError::NeedMore(_)) => {
            return Err(unsupported(
                "image is truncated: the file ends inside its header".into(),
            ))
        }
    };
    state.limits.check_dimensions(&info).map_err(unsupported)?;
    let tail = &image[image.len().saturating_sub(image_probe::TAIL_BYTES as usize)..];
    image_probe::check_tail(info.format, tail).map_err(unsupported)?;

    let key = format!(
        "{}{}.{}",
        state.key_prefix,
        uuid::Uuid::new_v4(),
        info.format.extension()
    );
    let put = state
        .store
        .put(&state.bucket, &key, image, info.format.content_type())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "upload failed");
            ApiError(
                StatusCode::BAD_GATEWAY,
                "storing the image failed; try again".into(),
            )
        })?;
    let id = image_id(
        &state.bucket,
        &key,
        put.version_id.as_deref().unwrap_or(&put.etag),
    );
    tracing::info!(image_id = %id, %key, size, "image uploaded");
    let location = format!("/images/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location.clone())],
        Json(json!({ "id": id, "key": key, "status_url": location })),
    )
        .into_response())
}

fn decode_base64(body: &[u8]) -> Result<Bytes, ApiError> {
    let bad = |reason: String| ApiError(StatusCode::BAD_REQUEST, reason);
    let upload: Base64Upload = serde_json::from_slice(body)
        .map_err(|e| bad(format!("expected JSON {{\"base64Image\": \"...\"}}: {e}")))?;
    // Accept data URLs (`data:image/png;base64,...`) as browsers produce them.
    let text = upload.base64_image.trim();
    let text = text.split_once(";base64,").map_or(text, |(_, data)| data);
    let engine = base64::engine::general_purpose::STANDARD;
    engine
        .decode(text.as_bytes())
        .map(Bytes::from)
        .map_err(|e| bad(format!("base64Image is not valid base64: {e}")))
}

async fn image<S: ObjectStore, T: ImageTable>(
    State(state): State<Arc<ApiState<S, T>>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.table.get(&id).await {
        Ok(Some(record)) => Ok(Json(record).into_response()),
        Ok(None) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no image with id {id:?}"),
        )),
        Err(e) => {
            tracing::error!(error = %e, "reading the item failed");
            Err(ApiError(
                StatusCode::BAD_GATEWAY,
                "reading the image's item failed; try again".into(),
            ))
        }
    }
}

//! `POST /images`: an image as raw bytes or base64 JSON, checked as ingest would check it,
//! stored under the API's key prefix; the S3 event then starts the pipeline.
use std::sync::Arc;

use axum::{
    extract::{rejection::BytesRejection, Request, State},
    http::{header::CONTENT_TYPE, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use base64::Engine;
use bytes::Bytes;
use imgflow_catalog::ports::ImageCatalog;
use imgflow_imaging::probe::Check;
use imgflow_messages::image_id;
use imgflow_runtime::{
    ports::{ImageTable, ObjectStore},
    PortErrorKind,
};
use serde::Deserialize;
use serde_json::json;

use crate::{errors::ApiError, ApiState};

/// Refuses uploads from another site's page (403), declared bodies over the limit (413), and
/// answers 503 at once when [`ApiState::upload_permits`] are all taken, all before the body is
/// read: a flood of uploads queues nowhere and holds no memory.
pub(crate) async fn limit_uploads<
    S: Send + Sync + 'static,
    T: Send + Sync + 'static,
    C: Send + Sync + 'static,
>(
    State(state): State<Arc<ApiState<S, T, C>>>,
    request: Request,
    next: Next,
) -> Response {
    // Any web page can make a browser POST a body with no Content-Type (`sendBeacon`, a form)
    // to a reachable API, each upload a paid detector call: like the console's other
    // state-changing requests, uploads come from this origin or from a client that is not a
    // browser (which sends no Origin).
    if !crate::auth::same_origin(request.headers()) {
        return ApiError(
            StatusCode::FORBIDDEN,
            "uploads from another site's page are refused; upload from the console or with a client such as curl".into(),
        )
        .into_response();
    }
    // Refused from the header, before a byte of the body is read.
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let limit = body_limit(&state.limits);
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError(StatusCode::PAYLOAD_TOO_LARGE, too_large(&state.limits)).into_response();
    }
    let Ok(_permit) = Arc::clone(&state.upload_permits).try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            )],
            Json(json!({"error": "too many uploads at once; try again in a second"})),
        )
            .into_response();
    };
    next.run(request).await
}

/// The largest body an upload may have: the base64 form (4/3 of the largest image) plus JSON
/// framing. The decoded image is checked against the image limit itself.
pub(crate) fn body_limit(limits: &imgflow_imaging::probe::Limits) -> usize {
    (limits.max_bytes as usize) * 4 / 3 + 64 * 1024
}

fn too_large(limits: &imgflow_imaging::probe::Limits) -> String {
    format!(
        "the body is larger than {} bytes; images may be at most {} bytes (about 4/3 of that as base64 JSON)",
        body_limit(limits),
        limits.max_bytes
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Base64Upload<'a> {
    /// Borrowed from the body where it can be (base64 has nothing JSON escapes).
    #[serde(borrow)]
    base64_image: std::borrow::Cow<'a, str>,
}

pub(crate) async fn upload<S: ObjectStore, T: ImageTable, C: ImageCatalog>(
    State(state): State<Arc<ApiState<S, T, C>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError(StatusCode::PAYLOAD_TOO_LARGE, too_large(&state.limits))
        }
        status => ApiError(status, rejection.body_text()),
    })?;
    if body.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the body is empty: send the image's bytes (image/png, image/jpeg or application/octet-stream), or JSON {\"base64Image\": \"...\"}".into(),
        ));
    }
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
        // Raw bytes, whatever they claim to be: the check below reads what they are.
        "image/png" | "image/jpeg" | "image/jpg" | "application/octet-stream" | "" => body,
        // The body is dropped once decoded: one copy of the image at a time.
        "application/json" => decode_base64(body)?,
        other => {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {other:?} is not accepted; send image/png, image/jpeg or application/octet-stream bytes, or JSON {{\"base64Image\": \"...\"}}"
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
    // The same check ingest makes, answered now rather than discovered later.
    let info = match state.limits.check(size, &image, None) {
        Check::Valid(info) => info,
        Check::Invalid { reason, .. } => {
            return Err(ApiError(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason))
        }
        // Given the whole file, the check never asks for more; were it to, the file is short.
        Check::NeedHead(_) | Check::NeedTail => {
            let reason = "image is truncated: the file ends inside its header";
            return Err(ApiError(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason.into()));
        }
    };

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
            if e.kind == PortErrorKind::NotFound {
                // The bucket does not exist: nothing a retry fixes.
                let reason = format!(
                    "the bucket {} does not exist: run `imgflow provision`",
                    state.bucket
                );
                return ApiError(StatusCode::SERVICE_UNAVAILABLE, reason);
            }
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

fn decode_base64(body: Bytes) -> Result<Bytes, ApiError> {
    let bad = |reason: String| ApiError(StatusCode::BAD_REQUEST, reason);
    let upload: Base64Upload = serde_json::from_slice(&body)
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

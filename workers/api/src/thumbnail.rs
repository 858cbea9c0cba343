//! An image's bytes (`GET /images/{id}/object`) and its thumbnail (`/thumbnail`), decoded
//! within the memory budget, a few at a time.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{
        header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS},
        HeaderMap, StatusCode,
    },
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use imgflow_messages::{ImageRecord, ImageStatus};
use imgflow_runtime::{
    ports::{ImageTable, ObjectLocation, ObjectStore},
    PortErrorKind,
};

use crate::{
    console,
    errors::{upstream, ApiError},
    routes::record,
    ApiState,
};

/// Longest side of a thumbnail, in pixels.
const THUMBNAIL_PX: u32 = 320;

/// The stored bytes, when ingest recognised them as an image: anything else in the bucket is
/// never served, so an uploaded HTML file cannot run as this origin's page.
async fn image_bytes<S: ObjectStore, T: ImageTable, C>(
    state: &ApiState<S, T, C>,
    record: &ImageRecord,
) -> Result<(Bytes, &'static str), ApiError> {
    let content_type = match record.content_type.as_deref() {
        Some("image/png") => "image/png",
        Some("image/jpeg") => "image/jpeg",
        _ => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                "this object was not recognised as an image".into(),
            ))
        }
    };
    let location = ObjectLocation {
        bucket: record.bucket.clone(),
        key: record.key.clone(),
        version_id: record.version_id.clone(),
    };
    match state.store.get(&location).await {
        Ok(bytes) => Ok((bytes, content_type)),
        Err(e) if e.kind == PortErrorKind::NotFound => Err(ApiError(
            StatusCode::NOT_FOUND,
            "the object is no longer in the bucket".into(),
        )),
        Err(e) => Err(upstream("reading the object", e)),
    }
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
}

pub(crate) async fn object<S: ObjectStore, T: ImageTable, C>(
    State(state): State<Arc<ApiState<S, T, C>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = record(&state, &id).await?;
    // The id names one version of one object, so its bytes never change.
    let etag = format!("\"{}\"", record.id);
    if etag_matches(&headers, &etag) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let (bytes, content_type) = image_bytes(&state, &record).await?;
    Ok((
        [
            (CONTENT_TYPE, content_type.to_owned()),
            (CACHE_CONTROL, "private, max-age=86400".to_owned()),
            (ETAG, etag),
            (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

pub(crate) async fn thumbnail<S: ObjectStore, T: ImageTable, C>(
    State(state): State<Arc<ApiState<S, T, C>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = record(&state, &id).await?;
    let etag = format!("\"{}-thumb-{}\"", record.id, record.status);
    if etag_matches(&headers, &etag) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let placeholder = |text: &str| {
        (
            [
                (CONTENT_TYPE, "image/svg+xml".to_owned()),
                (CACHE_CONTROL, "no-cache".to_owned()),
                (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            console::placeholder_svg(text),
        )
            .into_response()
    };
    if matches!(record.status, ImageStatus::Rejected | ImageStatus::Missing) {
        return Ok(placeholder(record.status.as_str()));
    }
    // Taken before the fetch, so waiting requests hold no image bytes, and moved into the
    // decode, so a client that goes away cannot free the slot while its decode still runs.
    let permit = Arc::clone(&state.thumbnail_permits)
        .acquire_owned()
        .await
        .expect("semaphore is never closed");
    let (bytes, _) = match image_bytes(&state, &record).await {
        Ok(found) => found,
        Err(ApiError(StatusCode::NOT_FOUND, _)) => return Ok(placeholder("not available")),
        Err(e) => return Err(e),
    };
    let budget = state.limits.max_decoded_bytes;
    let jpeg = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        make_thumbnail(&bytes, budget)
    })
    .await
    .ok()
    .flatten();
    Ok(match jpeg {
        Some(jpeg) => (
            [
                (CONTENT_TYPE, "image/jpeg".to_owned()),
                (CACHE_CONTROL, "private, max-age=86400".to_owned()),
                (ETAG, etag),
                (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            jpeg,
        )
            .into_response(),
        None => placeholder("cannot decode"),
    })
}

/// A JPEG no larger than [`THUMBNAIL_PX`] on its longer side, upright, decoded within
/// `budget`; `None` (the placeholder) for anything that cannot be.
fn make_thumbnail(bytes: &[u8], budget: u64) -> Option<Vec<u8>> {
    let small = imgflow_imaging::decode_scaled(bytes, THUMBNAIL_PX, budget)
        .inspect_err(|e| tracing::info!(error = %e, "no thumbnail"))
        .ok()?;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&small)
        .ok()?;
    Some(out)
}

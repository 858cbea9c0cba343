//! An image's bytes (`GET /images/{id}/object`: `410 Gone` once the image is deleted or
//! replaced, at most the image size limit, at most 8 at once) and its thumbnail
//! (`/thumbnail`), as the thumbnail stage stored it: the API decodes nothing, so a page of the gallery costs reads,
//! not CPU. A placeholder stands in while it is being made, and for images with none.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{
        header::{
            CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER, X_CONTENT_TYPE_OPTIONS,
        },
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

/// Most bytes of a stored thumbnail served (a 320 px JPEG at quality 80 is 10–40 KB).
const MAX_THUMBNAIL_BYTES: u64 = 1024 * 1024;

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
    // Never more than ingest would have accepted: a larger object under the key is not the
    // image this item describes.
    let cap = state.limits.max_bytes;
    match state
        .store
        .get_start(&location, cap.saturating_sub(1))
        .await
    {
        Ok((head, bytes)) if head.size == bytes.len() as u64 => Ok((bytes, content_type)),
        Ok(_) => Err(ApiError(
            StatusCode::NOT_FOUND,
            "the object under this key is larger than the image limit".into(),
        )),
        Err(e) if e.kind == PortErrorKind::NotFound => Err(ApiError(
            StatusCode::NOT_FOUND,
            "the object is no longer in the bucket".into(),
        )),
        Err(e) => Err(upstream("reading the object", e)),
    }
}

/// A deleted or replaced image is no longer what its key holds: `410 Gone`, its bytes unread.
fn refuse_gone(record: &ImageRecord) -> Result<(), ApiError> {
    match record.status {
        status if status.is_gone() => Err(ApiError(
            StatusCode::GONE,
            format!(
                "this image was {status}: {}",
                record.reason.as_deref().unwrap_or("")
            ),
        )),
        _ => Ok(()),
    }
}

/// Too many full images in flight: try again shortly.
fn busy() -> Response {
    let mut response = ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many images are being served at once; try again".into(),
    )
    .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    response
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
    refuse_gone(&record)?;
    // The id names one version of one object, so its bytes never change.
    let etag = format!("\"{}\"", record.id);
    if etag_matches(&headers, &etag) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let Ok(_permit) = state.object_permits.clone().try_acquire_owned() else {
        return Ok(busy());
    };
    let (bytes, content_type) = image_bytes(&state, &record).await?;
    Ok((
        [
            (CONTENT_TYPE, content_type.to_owned()),
            // Revalidated every time (a 304 costs one item read): a deleted image must stop
            // showing at once, not a day later.
            (CACHE_CONTROL, "private, no-cache".to_owned()),
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
    if record.status.is_gone() {
        return Ok(placeholder(record.status.as_str()));
    }
    let Some(stored) = &record.thumbnail else {
        let text = match record.status {
            status @ (ImageStatus::Rejected
            | ImageStatus::Missing
            | ImageStatus::Deleted
            | ImageStatus::Replaced) => status.as_str(),
            _ if record.thumbnail_error.is_some() => "no thumbnail",
            _ => "processing",
        };
        return Ok(placeholder(text));
    };
    // The thumbnail stage writes one thumbnail per id, from the same bytes each time.
    let etag = format!("\"{}-thumb\"", record.id);
    if etag_matches(&headers, &etag) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let location = ObjectLocation {
        bucket: record.bucket.clone(),
        key: stored.key.clone(),
        version_id: None,
    };
    // The stage writes a few tens of KB; anything far larger under that key is not its work
    // and is not served.
    let jpeg = match state
        .store
        .get_start(&location, MAX_THUMBNAIL_BYTES - 1)
        .await
    {
        Ok((head, bytes)) if head.size == bytes.len() as u64 => bytes,
        Ok(_) => return Ok(placeholder("not available")),
        Err(e) if e.kind == PortErrorKind::NotFound => return Ok(placeholder("not available")),
        Err(e) => return Err(upstream("reading the thumbnail", e)),
    };
    Ok((
        [
            (CONTENT_TYPE, "image/jpeg".to_owned()),
            // Short: a deleted image's thumbnail leaves a reloaded gallery within minutes.
            (CACHE_CONTROL, "private, max-age=300".to_owned()),
            (ETAG, etag),
            (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        jpeg,
    )
        .into_response())
}

//! An image's bytes (`GET /images/{id}/object`) and its thumbnail (`/thumbnail`), as the
//! thumbnail stage stored it: the API decodes nothing, so a page of the gallery costs reads,
//! not CPU. A placeholder stands in while it is being made, and for images with none.
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
    let Some(stored) = &record.thumbnail else {
        let text = match record.status {
            ImageStatus::Rejected | ImageStatus::Missing | ImageStatus::Deleted => {
                record.status.as_str()
            }
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
            (CACHE_CONTROL, "private, max-age=86400".to_owned()),
            (ETAG, etag),
            (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        jpeg,
    )
        .into_response())
}

//! `POST /images`: an image as raw bytes (also as curl's `--data-binary`, a form body),
//! multipart form data (`curl -F file=@x.png`, a browser form) or base64 JSON, checked as
//! ingest would check it, stored under the API's key prefix with the file's own name when the
//! client gives one; the S3 event then starts the pipeline.
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
    let full_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_type = full_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut file_name = client_file_name(&headers);
    let image = match content_type.as_str() {
        // Raw bytes, whatever they claim to be: the check below reads what they are. curl's
        // --data-binary labels them a form body, and sends them untouched.
        "image/png"
        | "image/jpeg"
        | "image/jpg"
        | "application/octet-stream"
        | "application/x-www-form-urlencoded"
        | "" => body,
        // The body is dropped once decoded: one copy of the image at a time.
        "application/json" => decode_base64(body)?,
        "multipart/form-data" => {
            let (image, name) = first_file(full_type, body, state.limits.max_bytes).await?;
            file_name = name.or(file_name);
            image
        }
        other => {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {other:?} is not accepted; send the image's bytes (image/png, image/jpeg, application/octet-stream; curl --data-binary @photo.jpg), a form (curl -F file=@photo.jpg), or JSON {{\"base64Image\": \"...\"}}"
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

    // A folder of its own keeps two uploads of one name apart; the name, made safe, keeps
    // the file recognisable in the gallery.
    let key = match file_name.as_deref().and_then(safe_name) {
        Some(name) => format!(
            "{}{}/{name}.{}",
            state.key_prefix,
            uuid::Uuid::new_v4(),
            info.format.extension()
        ),
        None => format!(
            "{}{}.{}",
            state.key_prefix,
            uuid::Uuid::new_v4(),
            info.format.extension()
        ),
    };
    let put = state
        .store
        .put(&state.bucket, &key, image, info.format.content_type())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "upload failed");
            if e.kind == PortErrorKind::NotFound {
                // The bucket does not exist: nothing a retry fixes.
                let provision = state.pipeline.as_ref().map_or_else(
                    || "imgflow provision".to_owned(),
                    |p| p.command("provision"),
                );
                let reason = format!(
                    "the bucket {} does not exist: run `{provision}`",
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

/// The file name a client sends with raw bytes: `X-Filename` (percent-encoded, as the
/// console sends it) or `Content-Disposition`'s `filename`.
fn client_file_name(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(name) = header("x-filename") {
        return Some(
            percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    let disposition = header("content-disposition")?;
    let (_, rest) = disposition.split_once("filename=")?;
    Some(rest.split(';').next()?.trim().trim_matches('"').to_owned())
}

/// Longest name kept, in characters (before the extension).
const MAX_NAME_CHARS: usize = 80;

/// `raw` (a client's file name) reduced to something safe in a key and in the console: its
/// last path segment without extension, letters and digits kept, `-`, `_` and `.` kept inside,
/// anything else (spaces, slashes, quotes, control characters) one `-`, at most
/// [`MAX_NAME_CHARS`]; `None` when nothing is left. The extension is the detected format's.
pub(crate) fn safe_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let stem = match base.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => base,
    };
    let mut out = String::new();
    for c in stem.chars() {
        let keep = c.is_alphanumeric() || matches!(c, '-' | '_' | '.');
        let c = if keep { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
        if out.chars().count() >= MAX_NAME_CHARS {
            break;
        }
    }
    let name = out.trim_matches(|c| matches!(c, '-' | '_' | '.'));
    (!name.is_empty()).then(|| name.to_owned())
}

/// The first file of a multipart body (a part with a file name, else the first part), and its
/// file name. The body was read whole, within the upload limit, before this.
async fn first_file(
    content_type: &str,
    body: Bytes,
    max_part: u64,
) -> Result<(Bytes, Option<String>), ApiError> {
    let bad = |reason: String| ApiError(StatusCode::BAD_REQUEST, reason);
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        bad(format!(
            "multipart/form-data without a usable boundary: {e}"
        ))
    })?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    // No part may hold more than an image may be: a bigger one is refused as it is read.
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().per_field(max_part));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut first = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("the multipart body is malformed: {e}")))?
    {
        let name = field.file_name().map(str::to_owned);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad(format!("the multipart body is malformed: {e}")))?;
        if name.is_some() {
            return Ok((bytes, name));
        }
        first.get_or_insert(bytes);
    }
    first.map(|bytes| (bytes, None)).ok_or_else(|| {
        bad("the multipart body has no part: send the image as a file field (curl -F file=@photo.jpg)".into())
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_file_name_is_made_safe_for_a_key_and_a_page() {
        for (raw, safe) in [
            ("holiday.jpg", Some("holiday")),
            ("C:\\Users\\me\\Pictures\\cat photo.jpeg", Some("cat-photo")),
            ("../../thumbnails/x.png", Some("x")),
            ("a\u{0}b\r\nc.png", Some("a-b-c")),
            ("\u{202e}gpj.exe", Some("gpj")),
            ("...", None),
            ("", None),
            ("/", None),
            (".hidden", Some("hidden")),
            ("naïve façade.PNG", Some("naïve-façade")),
        ] {
            assert_eq!(safe_name(raw).as_deref(), safe, "{raw:?}");
        }
        let long = safe_name(&"x".repeat(10_000)).unwrap();
        assert_eq!(long.chars().count(), MAX_NAME_CHARS);
    }
}

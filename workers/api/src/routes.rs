//! Routes. The API: `POST /images`, `GET /images` (a page, JSON), `GET /images/{id}` (the
//! item, JSON), `GET /images/{id}/object` and `/thumbnail`, `GET /api/pipeline`. The console:
//! the same `GET` paths answer HTML to browsers (`Accept: text/html`), plus `/`, `/dlq/{stage}`
//! and the two assets. (`main.rs` adds `/metrics`, `/healthz`, `/readyz`.)
use std::sync::Arc;

use axum::{
    extract::{DefaultBodyLimit, Path, Query, Request, State},
    http::{
        header::{
            ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
            HOST, IF_NONE_MATCH, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
        },
        HeaderMap, HeaderValue, StatusCode,
    },
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::Engine;
use bytes::Bytes;
use imgflow_messages::{image_id, ImageRecord, ImageStatus};
use imgflow_runtime::{
    config::Stage,
    image_probe::{self, Limits, ProbeError},
    ports::{ImageCatalog, ImageQuery, ImageTable, ObjectLocation, ObjectStore},
    PortError, PortErrorKind,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::{
    console::{self, GalleryFilter},
    pipeline::PipelineProbe,
};

/// Images per gallery page unless asked otherwise.
const PAGE_SIZE: usize = 24;
/// Longest side of a thumbnail, in pixels.
const THUMBNAIL_PX: u32 = 320;
/// Only what the pages need: their own script and styles, images from the API itself.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

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
    /// The queues and throughput behind the Pipeline page; `None` shows it unavailable.
    pub pipeline: Option<PipelineProbe>,
    /// When set, every request but `/healthz` must present it (`x-api-key`, `Authorization:
    /// Bearer`, or as the password of HTTP Basic, which browsers prompt for).
    pub api_key: Option<String>,
    /// When set (the API listens on loopback), requests must name a loopback host: a page on
    /// any site could otherwise reach it through DNS rebinding.
    pub loopback_hosts_only: bool,
    /// Uploads being received at once; more are answered 503 before their body is read.
    pub upload_permits: Arc<Semaphore>,
    /// Thumbnails fetched and decoding at once; more wait (decoding is CPU-bound, and each
    /// holds an image of up to `limits.max_bytes`).
    pub thumbnail_permits: Arc<Semaphore>,
}

impl<S, T> ApiState<S, T> {
    /// State with no pipeline probe and no API key.
    pub fn new(store: S, table: T, bucket: String, key_prefix: String, limits: Limits) -> Self {
        Self {
            store,
            table,
            bucket,
            key_prefix,
            limits,
            pipeline: None,
            api_key: None,
            loopback_hosts_only: false,
            upload_permits: Arc::new(Semaphore::new(8)),
            thumbnail_permits: Arc::new(Semaphore::new(2)),
        }
    }
}

/// The API's and the console's routes on `state`.
pub fn router<S: ObjectStore, T: ImageTable + ImageCatalog>(state: Arc<ApiState<S, T>>) -> Router {
    router_with(state, Router::new())
}

/// [`router`] plus `extra` routes (`/metrics`, `/healthz`, `/readyz`), all behind the same
/// host and key checks; only `/healthz` answers without the key.
pub fn router_with<S: ObjectStore, T: ImageTable + ImageCatalog>(
    state: Arc<ApiState<S, T>>,
    extra: Router,
) -> Router {
    // Room for the base64 form (4/3 of the image) plus JSON framing; the decoded image is
    // checked against the limit itself.
    let body_limit = (state.limits.max_bytes as usize) * 4 / 3 + 64 * 1024;
    let uploads = post(upload::<S, T>).layer(middleware::from_fn_with_state(
        state.clone(),
        limit_uploads::<S, T>,
    ));
    Router::new()
        .route("/", get(pipeline_page::<S, T>))
        .route("/api/pipeline", get(pipeline_json::<S, T>))
        .route(
            "/dlq/{stage}",
            get(dead_letters::<S, T>).post(dead_letter_samples::<S, T>),
        )
        .route("/images", uploads.get(list::<S, T>))
        .route("/images/{id}", get(image::<S, T>))
        .route("/images/{id}/object", get(object::<S, T>))
        .route("/images/{id}/thumbnail", get(thumbnail::<S, T>))
        .route("/console.js", get(script))
        .route("/console.css", get(styles))
        .with_state(state.clone())
        .merge(extra)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_key::<S, T>,
        ))
        .layer(middleware::from_fn_with_state(
            state,
            require_loopback_host::<S, T>,
        ))
}

/// Whether the client asked for a page rather than data (browsers put `text/html` first).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

fn page(html: String) -> Response {
    (
        [(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP))],
        Html(html),
    )
        .into_response()
}

/// Keys compared through their SHA-256 digests, byte for byte without an early exit: the
/// time taken tells nothing of where, or whether in length, they differ.
fn same_key(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(given)
        .iter()
        .zip(Sha256::digest(expected).iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Whether `host` (a `Host` header: name and optional port) names this machine.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:8080
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn require_loopback_host<S: Send + Sync + 'static, T: Send + Sync + 'static>(
    State(state): State<Arc<ApiState<S, T>>>,
    request: Request,
    next: Next,
) -> Response {
    if !state.loopback_hosts_only {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if is_loopback_host(host) {
        return next.run(request).await;
    }
    tracing::warn!(
        host,
        "refused a request for a host that is not this machine"
    );
    ApiError(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this API listens on loopback and answers only for localhost or 127.0.0.1, not {host:?}; \
             to serve other names, listen beyond loopback with IMGFLOW_API_KEY set"
        ),
    )
    .into_response()
}

/// Answers 503 at once when [`ApiState::upload_permits`] are all taken, before the body is
/// read: a flood of uploads queues nowhere and holds no memory.
async fn limit_uploads<S: Send + Sync + 'static, T: Send + Sync + 'static>(
    State(state): State<Arc<ApiState<S, T>>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = Arc::clone(&state.upload_permits).try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, HeaderValue::from_static("1"))],
            Json(json!({"error": "too many uploads at once; try again in a second"})),
        )
            .into_response();
    };
    next.run(request).await
}

fn presented_key(headers: &HeaderMap) -> Option<Vec<u8>> {
    if let Some(key) = headers.get("x-api-key") {
        return Some(key.as_bytes().to_vec());
    }
    let auth = headers.get(AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = auth.strip_prefix("Bearer ") {
        return Some(token.trim().as_bytes().to_vec());
    }
    let basic = auth.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    // Any user name; the key is the password.
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

async fn require_key<S: Send + Sync + 'static, T: Send + Sync + 'static>(
    State(state): State<Arc<ApiState<S, T>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.api_key else {
        return next.run(request).await;
    };
    // The one open path: load balancers and kubelets probe it without credentials.
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    match presented_key(request.headers()) {
        Some(given) if same_key(&given, expected.as_bytes()) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"imgflow\", charset=\"UTF-8\""),
            )],
            Json(json!({"error": "an API key is required: x-api-key, Authorization: Bearer, or Basic with the key as password"})),
        )
            .into_response(),
    }
}

async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../assets/console.js"),
    )
        .into_response()
}

async fn styles() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../assets/console.css"),
    )
        .into_response()
}

async fn pipeline_page<S, T>(State(state): State<Arc<ApiState<S, T>>>) -> Response {
    let Some(probe) = &state.pipeline else {
        return page(console::pipeline_unavailable(NO_PIPELINE));
    };
    match probe.view().await {
        Ok(view) => page(console::pipeline_page(&view)),
        Err(e) => {
            tracing::error!(error = %e, "reading the pipeline failed");
            page(console::pipeline_unavailable(&e.to_string()))
        }
    }
}

const NO_PIPELINE: &str = "this API was started without access to the queues";

fn probe<S, T>(state: &ApiState<S, T>) -> Result<&PipelineProbe, ApiError> {
    state
        .pipeline
        .as_ref()
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, NO_PIPELINE.into()))
}

async fn pipeline_json<S, T>(
    State(state): State<Arc<ApiState<S, T>>>,
) -> Result<Response, ApiError> {
    let probe = probe(state.as_ref())?;
    let view = probe
        .view()
        .await
        .map_err(|e| upstream("reading the pipeline", e))?;
    Ok(([(CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

/// `GET /dlq/{stage}`: the count only. Reading samples receives messages (and bumps their
/// receive counts), which a `GET` must not do: any page could trigger it with an `<img>`.
async fn dead_letters<S, T>(
    State(state): State<Arc<ApiState<S, T>>>,
    Path(stage): Path<String>,
) -> Response {
    answer(true, dead_letters_page(&state, &stage, false).await)
}

/// `POST /dlq/{stage}`: the count and samples, from the console's own form only.
async fn dead_letter_samples<S, T>(
    State(state): State<Arc<ApiState<S, T>>>,
    Path(stage): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&headers) {
        return answer(
            true,
            Err(ApiError(
                StatusCode::FORBIDDEN,
                "samples are read only from the console's own page".into(),
            )),
        );
    }
    answer(true, dead_letters_page(&state, &stage, true).await)
}

/// Whether a state-changing request comes from this origin: browsers send `Origin` (and
/// `Sec-Fetch-Site`) with every POST; a client sending neither is not a browser tricked by
/// another site.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = header("sec-fetch-site") {
        return site == "same-origin";
    }
    match (header(ORIGIN.as_str()), header(HOST.as_str())) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
    }
}

async fn dead_letters_page<S, T>(
    state: &ApiState<S, T>,
    stage: &str,
    samples: bool,
) -> Result<Response, ApiError> {
    let stage: Stage = stage
        .parse()
        .map_err(|e: String| ApiError(StatusCode::NOT_FOUND, e))?;
    let probe = probe(state)?;
    let inspection = if samples {
        probe.dead_letters(stage).await
    } else {
        probe.dead_letter_count(stage).await
    }
    .map_err(|e| upstream("reading the dead-letter queue", e))?;
    Ok(page(console::dead_letters_page(
        stage.as_str(),
        &inspection,
    )))
}

/// Query parameters of `GET /images`.
#[derive(Debug, Deserialize)]
struct ListParams {
    status: Option<String>,
    label: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// Errors as a page for browsers, as JSON for everyone else.
fn answer(html: bool, result: Result<Response, ApiError>) -> Response {
    match result {
        Err(ApiError(status, message)) if html => {
            let title = status.canonical_reason().unwrap_or("Error");
            (status, page(console::error_page(title, &message))).into_response()
        }
        other => other.into_response(),
    }
}

async fn list<S: ObjectStore, T: ImageTable + ImageCatalog>(
    State(state): State<Arc<ApiState<S, T>>>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Response {
    let html = wants_html(&headers);
    answer(html, list_images(&state, html, params).await)
}

async fn list_images<S, T: ImageCatalog>(
    state: &ApiState<S, T>,
    html: bool,
    params: ListParams,
) -> Result<Response, ApiError> {
    let status = match params.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(ImageStatus::parse(s).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("status {s:?} is not one of accepted, labeled, rejected, missing"),
            )
        })?),
    };
    let label = params
        .label
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    let query = ImageQuery {
        status,
        label: label.clone(),
        cursor: params.cursor.filter(|c| !c.is_empty()),
        limit: params.limit.unwrap_or(PAGE_SIZE).clamp(1, 100),
    };
    let found = state.table.list(&query).await.map_err(|e| {
        if e.kind == PortErrorKind::Invalid {
            ApiError(StatusCode::BAD_REQUEST, e.to_string())
        } else {
            upstream("listing images", e)
        }
    })?;
    if html {
        let filter = GalleryFilter {
            status,
            label,
            paged: query.cursor.is_some(),
        };
        return Ok(page(console::gallery_page(&found, &filter)));
    }
    Ok(Json(json!({ "images": found.images, "next": found.next })).into_response())
}

fn upstream(what: &str, e: PortError) -> ApiError {
    tracing::error!(error = %e, "{what} failed");
    ApiError(StatusCode::BAD_GATEWAY, format!("{what} failed; try again"))
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
struct Base64Upload<'a> {
    /// Borrowed from the body where it can be (base64 has nothing JSON escapes).
    #[serde(borrow)]
    base64_image: std::borrow::Cow<'a, str>,
}

async fn upload<S: ObjectStore, T: ImageTable + ImageCatalog>(
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
        // The body is dropped once decoded: one copy of the image at a time.
        "application/json" => decode_base64(body)?,
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

async fn record<S, T: ImageTable>(
    state: &ApiState<S, T>,
    id: &str,
) -> Result<ImageRecord, ApiError> {
    match state.table.get(id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no image with id {id:?}"),
        )),
        Err(e) => Err(upstream("reading the image's item", e)),
    }
}

/// Query parameters of `GET /images/{id}`.
#[derive(Debug, Deserialize)]
struct ImageParams {
    format: Option<String>,
}

async fn image<S: ObjectStore, T: ImageTable>(
    State(state): State<Arc<ApiState<S, T>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<ImageParams>,
) -> Result<Response, ApiError> {
    let html = wants_html(&headers) && params.format.as_deref() != Some("json");
    let result = match record(&state, &id).await {
        Ok(record) if html => Ok(page(console::image_page(&record))),
        Ok(record) => Ok(Json(record).into_response()),
        Err(e) => Err(e),
    };
    Ok(answer(html, result))
}

/// The stored bytes, when ingest recognised them as an image: anything else in the bucket is
/// never served, so an uploaded HTML file cannot run as this origin's page.
async fn image_bytes<S: ObjectStore, T: ImageTable>(
    state: &ApiState<S, T>,
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

async fn object<S: ObjectStore, T: ImageTable>(
    State(state): State<Arc<ApiState<S, T>>>,
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

async fn thumbnail<S: ObjectStore, T: ImageTable>(
    State(state): State<Arc<ApiState<S, T>>>,
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

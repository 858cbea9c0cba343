//! The router and the read handlers. The API: `POST /images`, `GET /images` (a page, JSON), `GET /images/{id}` (the
//! item, JSON), `GET /images/{id}/object` and `/thumbnail`, `GET /api/pipeline`. The console:
//! the same `GET` paths answer HTML to browsers (`Accept: text/html`), plus `/`, `/dlq/{stage}`
//! and the two assets. (`main.rs` adds `/metrics`, `/healthz`, `/readyz`.) Uploads are in
//! [`crate::upload`], image bytes and thumbnails in [`crate::thumbnail`], access checks in
//! [`crate::auth`].
use std::sync::Arc;

use axum::{
    extract::{rejection::QueryRejection, DefaultBodyLimit, Path, Query, State},
    http::{
        header::{ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE},
        HeaderMap, HeaderValue, StatusCode,
    },
    middleware,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use imgflow_catalog::{
    keys::MAX_PAGE,
    ports::{ImageCatalog, ImageQuery},
};
use imgflow_imaging::probe::Limits;
use imgflow_messages::{ImageRecord, ImageStatus};
use imgflow_runtime::{
    config::Stage,
    ports::{ImageTable, ObjectStore},
    PortErrorKind,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::{
    auth::{require_key, require_loopback_host, same_origin},
    console::{self, GalleryFilter},
    errors::{upstream, ApiError},
    pipeline::PipelineProbe,
    thumbnail::{object, thumbnail},
    upload::{limit_uploads, upload},
};

/// Images per gallery page unless asked otherwise.
const PAGE_SIZE: usize = 24;
/// Only what the pages need: their own script and styles, images from the API itself.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState<S, T, C> {
    /// The image bucket's store.
    pub store: S,
    /// The images table.
    pub table: T,
    /// The gallery's and label search's reads.
    pub catalog: C,
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
    /// Full images being read from S3 and sent at once (each up to the image size limit in
    /// memory); more are answered 503 with `Retry-After`.
    pub object_permits: Arc<Semaphore>,
}

impl<S, T, C> ApiState<S, T, C> {
    /// State with no pipeline probe and no API key.
    pub fn new(
        store: S,
        table: T,
        catalog: C,
        bucket: String,
        key_prefix: String,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            table,
            catalog,
            bucket,
            key_prefix,
            limits,
            pipeline: None,
            api_key: None,
            loopback_hosts_only: false,
            upload_permits: Arc::new(Semaphore::new(8)),
            object_permits: Arc::new(Semaphore::new(8)),
        }
    }
}

/// The API's and the console's routes on `state`.
pub fn router<S: ObjectStore, T: ImageTable, C: ImageCatalog>(
    state: Arc<ApiState<S, T, C>>,
) -> Router {
    router_with(state, Router::new())
}

/// [`router`] plus `extra` routes (`/metrics`, `/healthz`, `/readyz`), all behind the same
/// host and key checks; only `/healthz` answers without the key.
pub fn router_with<S: ObjectStore, T: ImageTable, C: ImageCatalog>(
    state: Arc<ApiState<S, T, C>>,
    extra: Router,
) -> Router {
    let body_limit = crate::upload::body_limit(&state.limits);
    let uploads = post(upload::<S, T, C>).layer(middleware::from_fn_with_state(
        state.clone(),
        limit_uploads::<S, T, C>,
    ));
    Router::new()
        .route("/", get(pipeline_page::<S, T, C>))
        .route("/api/pipeline", get(pipeline_json::<S, T, C>))
        .route(
            "/dlq/{stage}",
            get(dead_letters::<S, T, C>).post(dead_letter_samples::<S, T, C>),
        )
        .route("/images", uploads.get(list::<S, T, C>))
        .route("/images/{id}", get(image::<S, T, C>))
        .route("/duplicates", get(duplicates_page::<S, T, C>))
        .route("/images/{id}/object", get(object::<S, T, C>))
        .route("/images/{id}/thumbnail", get(thumbnail::<S, T, C>))
        .route("/console.js", get(script))
        .route("/console.css", get(styles))
        .fallback(not_found)
        .with_state(state.clone())
        .merge(extra)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_key::<S, T, C>,
        ))
        .layer(middleware::from_fn_with_state(
            state,
            require_loopback_host::<S, T, C>,
        ))
}

/// Any other path: a console page with the navigation for a browser (a guess such as
/// `/gallery` leads somewhere), a JSON error for a client.
async fn not_found(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if wants_html(&headers) {
        let body = format!(
            "<h1>Not found</h1><p>There is no page at <code>{}</code>. The console has the \
             <a href=\"/\">Pipeline</a> and the <a href=\"/images\">Gallery</a>, where each \
             image links to its own page.</p>",
            console::esc(path)
        );
        let mut response = page(console::layout("Not found", console::Nav::Other, &body));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no such route: {path} (the API has /images, /images/{{id}}, /api/pipeline and /dlq/{{stage}})"),
    )
    .into_response()
}

/// Whether the client asked for a page rather than data (browsers put `text/html` first).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

pub(crate) fn page(html: String) -> Response {
    (
        [(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP))],
        Html(html),
    )
        .into_response()
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

async fn pipeline_page<S, T, C>(State(state): State<Arc<ApiState<S, T, C>>>) -> Response {
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

async fn duplicates_page<S, T, C>(
    State(state): State<Arc<ApiState<S, T, C>>>,
) -> Result<Response, ApiError> {
    let probe = probe(state.as_ref())?;
    let found = probe
        .duplicates()
        .await
        .map_err(|e| upstream("reading the duplicates", e))?;
    Ok(page(crate::duplicates::page(&found)))
}

fn probe<S, T, C>(state: &ApiState<S, T, C>) -> Result<&PipelineProbe, ApiError> {
    state
        .pipeline
        .as_ref()
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, NO_PIPELINE.into()))
}

async fn pipeline_json<S, T, C>(
    State(state): State<Arc<ApiState<S, T, C>>>,
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
async fn dead_letters<S, T, C>(
    State(state): State<Arc<ApiState<S, T, C>>>,
    Path(stage): Path<String>,
) -> Response {
    answer(true, dead_letters_page(&state, &stage, false).await)
}

/// `POST /dlq/{stage}`: the count and samples, from the console's own form only.
async fn dead_letter_samples<S, T, C>(
    State(state): State<Arc<ApiState<S, T, C>>>,
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

async fn dead_letters_page<S, T, C>(
    state: &ApiState<S, T, C>,
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
    Ok(page(crate::dead_letters::page(
        stage.as_str(),
        &inspection,
        &|args| probe.command(args),
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

async fn list<S: ObjectStore, T: ImageTable, C: ImageCatalog>(
    State(state): State<Arc<ApiState<S, T, C>>>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let html = wants_html(&headers);
    let result = match params {
        Ok(Query(params)) => list_images(&state, html, params).await,
        Err(rejection) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid query ({}): status, label, cursor and limit (1–{MAX_PAGE}) are accepted",
                rejection.body_text()
            ),
        )),
    };
    answer(html, result)
}

async fn list_images<S, T, C: ImageCatalog>(
    state: &ApiState<S, T, C>,
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
        limit: match params.limit {
            None => PAGE_SIZE,
            Some(n @ 1..=MAX_PAGE) => n,
            Some(n) => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("limit {n} is out of range: 1–{MAX_PAGE} images per page"),
                ))
            }
        },
    };
    let found = state.catalog.list(&query).await.map_err(|e| {
        if e.kind == PortErrorKind::Invalid {
            ApiError(
                StatusCode::BAD_REQUEST,
                "invalid cursor: pass back the `next` value of a previous page".into(),
            )
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

pub(crate) async fn record<S, T: ImageTable, C>(
    state: &ApiState<S, T, C>,
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

async fn image<S: ObjectStore, T: ImageTable, C>(
    State(state): State<Arc<ApiState<S, T, C>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<ImageParams>,
) -> Result<Response, ApiError> {
    let html = wants_html(&headers) && params.format.as_deref() != Some("json");
    let result = match record(&state, &id).await {
        Ok(record) if html => {
            // Its near-duplicates are a bonus: the page shows without them when the index
            // cannot be read.
            let near = match &state.pipeline {
                Some(probe) => probe.near(&record.id).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading the image's near-duplicates failed");
                    Vec::new()
                }),
                None => Vec::new(),
            };
            let section = crate::duplicates::near_section(&record, &near);
            Ok(page(console::image_page_with(&record, &section)))
        }
        Ok(record) => Ok(Json(record).into_response()),
        Err(e) => Err(e),
    };
    Ok(answer(html, result))
}

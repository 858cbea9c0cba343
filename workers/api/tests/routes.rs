//! The API against in-memory ports.
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::{
    body::{to_bytes, Body},
    http::{Request, StatusCode},
    Router,
};
use base64::Engine;
use imgflow_api::{router, ApiState};
use imgflow_catalog::{
    fakes::{FakeCatalog, FakeLabelIndex},
    ports::LabelIndex,
};
use imgflow_imaging::probe::Limits;
use imgflow_messages::{
    BoundingBox, ImageLabeled, ImageRecord, ImageRef, ImageStatus, Instance, Label, NamedRef,
    Thumbnail, SCHEMA_VERSION,
};
use imgflow_runtime::{
    fakes::{FakeObjectStore, FakeTable},
    ports::{ImageTable, LabelsWrite, ObjectLocation, ObjectStore, StoredLabels, ThumbnailOutcome},
};
use tower::ServiceExt;

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend(std::iter::repeat_n(1u8, 300_000));
    v.extend_from_slice(b"\0\0\0\0IEND\xae\x42\x60\x82");
    v
}

type State = ApiState<FakeObjectStore, FakeTable, FakeCatalog>;

/// A table and the catalog over it, with its label index.
fn tables() -> (FakeTable, FakeCatalog) {
    let table = FakeTable::default();
    let catalog = FakeCatalog {
        table: table.clone(),
        index: Arc::new(FakeLabelIndex::default()),
    };
    (table, catalog)
}

fn app(max_bytes: u64) -> (Router, Arc<State>) {
    let (table, catalog) = tables();
    let state = Arc::new(ApiState::new(
        FakeObjectStore::default(),
        table,
        catalog,
        "b".into(),
        "incoming/api/".into(),
        Limits {
            max_bytes,
            ..Limits::default()
        },
    ));
    (router(state.clone()), state)
}

/// A real 64×48 PNG.
fn decodable_png() -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_pixel(64, 48, image::Rgb([200, 30, 30]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// An image in the store and labeled in the table, as the pipeline leaves it.
fn location(bucket: &str, key: &str) -> ObjectLocation {
    ObjectLocation {
        bucket: bucket.into(),
        key: key.into(),
        version_id: None,
    }
}

async fn labeled_image(state: &State, key: &str, label: &str) -> String {
    let etag = state.store.insert("b", key, decodable_png());
    let id = imgflow_messages::image_id("b", key, &etag);
    let received_at = imgflow_runtime::clock::now_rfc3339();
    let mut record = ImageRecord::new(
        id.clone(),
        "b".into(),
        key.into(),
        etag.clone(),
        received_at.clone(),
        ImageStatus::Accepted,
    );
    record.content_type = Some("image/png".into());
    state.table.write_verdict(&record).await.unwrap();
    let labeled = ImageLabeled {
        schema_version: SCHEMA_VERSION,
        image: ImageRef {
            image_id: id.clone(),
            trace_id: "t".into(),
            bucket: "b".into(),
            key: key.into(),
            version_id: None,
            etag,
            received_at,
        },
        labels: vec![Label {
            name: label.into(),
            confidence: 93.0,
            instances: vec![Instance {
                bounding_box: BoundingBox {
                    width: 0.5,
                    height: 0.5,
                    left: 0.25,
                    top: 0.25,
                },
                confidence: 93.0,
            }],
            parents: vec![NamedRef::new("Animal")],
            categories: vec![],
        }],
        detector: "fake".into(),
        label_model_version: "1".into(),
        labeled_at: imgflow_runtime::clock::now_rfc3339(),
        duplicate_of: None,
    };
    let write = state
        .table
        .write_labels(&labeled, &imgflow_runtime::clock::now_rfc3339())
        .await
        .unwrap();
    let LabelsWrite::Written { replaced, .. } = write else {
        panic!("fresh labels are written")
    };
    let current = StoredLabels {
        labeled_at: labeled.labeled_at.clone(),
        labels: labeled.labels.clone(),
    };
    state
        .catalog
        .index
        .index_labels(&id, &current, replaced.as_ref())
        .await
        .unwrap();
    id
}

async fn get(app: &Router, path: &str, accept: &str) -> (StatusCode, HeaderMap, String) {
    let response = app
        .clone()
        .oneshot(
            Request::get(path)
                .header("accept", accept)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test]
async fn browsers_get_pages_and_api_clients_get_json_from_the_same_paths() {
    let (app, state) = app(15 * 1024 * 1024);
    let id = labeled_image(&state, "incoming/cat.png", "Cat").await;

    let (status, headers, html) = get(&app, &format!("/images/{id}"), BROWSER).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(html.contains("class=\"box\""), "the box is drawn: {html}");
    let (_, headers, json) = get(&app, &format!("/images/{id}"), "application/json").await;
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let record: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(record["status"], "labeled");

    let (_, _, gallery) = get(&app, "/images", BROWSER).await;
    assert!(
        gallery.contains(&format!("href=\"/images/{id}\"")),
        "{gallery}"
    );
    let (_, _, page) = get(&app, "/images?label=animal&status=labeled", "*/*").await;
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!(
        page["images"][0]["id"],
        id.as_str(),
        "found through its parent, any case"
    );
    let (_, _, page) = get(&app, "/images?label=Dog", "*/*").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&page).unwrap()["images"],
        serde_json::json!([])
    );
    let (status, _, _) = get(&app, "/images?status=sleeping", "*/*").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_key_holding_a_script_tag_shows_as_text() {
    let (app, state) = app(15 * 1024 * 1024);
    let key = "incoming/<script>alert('owned')</script>.png";
    let id = labeled_image(&state, key, "<img src=x onerror=alert(1)>").await;
    for path in [format!("/images/{id}"), "/images".to_owned()] {
        let (_, _, html) = get(&app, &path, BROWSER).await;
        assert!(!html.contains("<script>alert"), "{path}: {html}");
        assert!(!html.contains("<img src=x"), "{path}: {html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn images_and_thumbnails_are_served_through_the_api() {
    let (app, state) = app(15 * 1024 * 1024);
    let id = labeled_image(&state, "incoming/red.png", "Red").await;
    let (status, headers, _) = get(&app, &format!("/images/{id}/object"), "image/*").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");

    // Until the thumbnail stage has written one, a placeholder: the API decodes nothing.
    let (status, headers, svg) = get(&app, &format!("/images/{id}/thumbnail"), "*/*").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert!(svg.contains("processing"), "{svg}");

    let (jpeg, width, height) = imgflow_imaging::thumbnail_jpeg(
        &state
            .store
            .get(&location("b", "incoming/red.png"))
            .await
            .unwrap(),
        320,
        imgflow_imaging::DEFAULT_MAX_DECODED_BYTES,
    )
    .unwrap();
    let key = imgflow_messages::thumbnail_key(&id);
    state.store.insert("b", &key, jpeg.clone());
    let made = ThumbnailOutcome::Made(Thumbnail {
        key,
        width,
        height,
        made_at: None,
        perceptual_hash: None,
    });
    state.table.write_thumbnail(&id, &made).await.unwrap();
    let response = app
        .clone()
        .oneshot(
            Request::get(format!("/images/{id}/thumbnail"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    assert_eq!(bytes, jpeg, "the stored thumbnail, as stored");
    let thumb = image::load_from_memory(&bytes).unwrap();
    assert_eq!(
        (thumb.width(), thumb.height()),
        (64, 48),
        "small images stay their size"
    );

    // Whatever else lands in the bucket is never served as this origin's content.
    let etag = state
        .store
        .insert("b", "incoming/page.html", b"<html>".to_vec());
    let other = ImageRecord::new(
        imgflow_messages::image_id("b", "incoming/page.html", &etag),
        "b".into(),
        "incoming/page.html".into(),
        etag,
        imgflow_runtime::clock::now_rfc3339(),
        ImageStatus::Rejected,
    );
    state.table.write_verdict(&other).await.unwrap();
    let (status, _, _) = get(&app, &format!("/images/{}/object", other.id), "*/*").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, svg) = get(&app, &format!("/images/{}/thumbnail", other.id), "*/*").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert!(svg.contains("rejected"));
}

/// A deleted or replaced image is gone: 410, and its bytes (still readable on a versioned
/// bucket) are never read; one in flight too many is 503 with Retry-After; an object under the
/// key larger than the image limit is never read whole.
#[tokio::test]
async fn deleted_images_are_gone_and_full_reads_are_bounded() {
    let (app, state) = app(15 * 1024 * 1024);
    let id = labeled_image(&state, "incoming/red.png", "Red").await;
    let (status, headers, _) = get(&app, &format!("/images/{id}/object"), "image/*").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "private, no-cache");

    let permits: Vec<_> = (0..8)
        .map(|_| state.object_permits.clone().try_acquire_owned().unwrap())
        .collect();
    let (status, headers, _) = get(&app, &format!("/images/{id}/object"), "image/*").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    drop(permits);

    let mut gone = imgflow_runtime::fakes::deletion(&id, 1);
    for status in [ImageStatus::Replaced, ImageStatus::Deleted] {
        gone.status = status;
        gone.version += 1;
        state.table.end(&gone).await.unwrap();
        let reads = state.store.range_reads();
        let (code, _, body) = get(&app, &format!("/images/{id}/object"), "image/*").await;
        assert_eq!(code, StatusCode::GONE, "{status}");
        assert!(body.contains(status.as_str()), "{body}");
        assert_eq!(
            state.store.range_reads(),
            reads,
            "no byte of a {status} image is read"
        );
        let (_, _, svg) = get(&app, &format!("/images/{id}/thumbnail"), "*/*").await;
        assert!(svg.contains(status.as_str()), "{svg}");
    }

    // The key now holds more than the limit allows (the item says it was a small PNG).
    let (small, state) = self::app(64 * 1024);
    let id = labeled_image(&state, "incoming/big.png", "Big").await;
    state
        .store
        .insert("b", "incoming/big.png", vec![0u8; 1024 * 1024]);
    let (code, _, body) = get(&small, &format!("/images/{id}/object"), "image/*").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body.contains("larger than the image limit"), "{body}");
}

#[tokio::test]
async fn with_a_key_configured_every_request_must_present_it() {
    let (table, catalog) = tables();
    let mut state = ApiState::new(
        FakeObjectStore::default(),
        table,
        catalog,
        "b".into(),
        "incoming/api/".into(),
        Limits::default(),
    );
    state.api_key = Some("correct horse battery staple".into());
    let app = router(Arc::new(state));
    let (status, headers, _) = get(&app, "/images", BROWSER).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"),
        "browsers prompt"
    );
    let with = |name: &str, value: String| {
        Request::get("/images")
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };
    let basic = base64::engine::general_purpose::STANDARD.encode("me:correct horse battery staple");
    for request in [
        with("x-api-key", "correct horse battery staple".into()),
        with(
            "authorization",
            "Bearer correct horse battery staple".into(),
        ),
        with("authorization", format!("Basic {basic}")),
    ] {
        assert_eq!(
            app.clone().oneshot(request).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let wrong = with("x-api-key", "correct horse battery stapler".into());
    assert_eq!(
        app.clone().oneshot(wrong).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn send(app: Router, content_type: &str, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
    let request = Request::post("/images")
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn raw_and_base64_uploads_land_under_incoming_with_their_pipeline_id() {
    let (app, _) = app(15 * 1024 * 1024);
    let (status, body) = send(app.clone(), "image/png", png(100, 100)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["key"].as_str().unwrap().starts_with("incoming/api/"));
    assert_eq!(body["id"].as_str().unwrap().len(), 32);

    // Larger than the tutorial's 256 KB state-machine limit, in the tutorial's JSON shape.
    let encoded = base64::engine::general_purpose::STANDARD.encode(png(200, 100));
    let json = serde_json::json!({ "base64Image": encoded }).to_string();
    let (status, body) = send(app, "application/json", json.into_bytes()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["key"].as_str().unwrap().ends_with(".png"));
}

/// A page on another site cannot post images into the pipeline (each a paid detector call):
/// `sendBeacon` sends no Content-Type, and a browser marks it cross-site.
#[tokio::test]
async fn uploads_from_another_sites_page_are_refused() {
    let (app, state) = app(15 * 1024 * 1024);
    let beacon = |headers: &[(&str, &str)]| {
        let mut request = Request::post("/images");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Body::from(png(100, 100))).unwrap()
    };
    for headers in [
        &[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080"),
        ][..],
        &[("sec-fetch-site", "cross-site"), ("host", "127.0.0.1:8080")][..],
    ] {
        let response = app.clone().oneshot(beacon(headers)).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    assert!(state.table.items().is_empty(), "nothing stored");
    // The console's own page, and clients that are not browsers, still upload.
    for headers in [
        &[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ][..],
        &[("sec-fetch-site", "same-origin")][..],
        &[][..],
    ] {
        let response = app.clone().oneshot(beacon(headers)).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{headers:?}");
    }
}

#[tokio::test]
async fn oversize_is_413_and_not_an_image_is_415_with_the_reason() {
    let (app, _) = app(100_000);
    let (status, _) = send(app.clone(), "image/png", png(100, 100)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = send(app.clone(), "image/png", b"hello, plain text".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body["error"].as_str().unwrap().contains("text"), "{body}");
    let (status, _) = send(app.clone(), "text/plain", b"hello".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = send(
        app,
        "application/json",
        br#"{"base64Image": "%%%"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let (app, _) = app(1000);
    let response = app
        .clone()
        .oneshot(Request::get("/images/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["content-type"], "application/json");
    let (status, headers, html) = get(&app, "/images/nope", BROWSER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(html.contains("no image with id"));
    let (status, _, html) = get(&app, "/images?status=sleeping", BROWSER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("&quot;sleeping&quot;"), "{html}");
}

/// Every refusal, framework ones included, answers the same `{"error": ...}` JSON.
#[tokio::test]
async fn every_refusal_is_json_naming_the_limit() {
    let (app, _) = app(100_000);
    // Over the body limit, refused from Content-Length before the body is read.
    let request = Request::post("/images")
        .header("content-type", "application/json")
        .header("content-length", "20000000")
        .body(Body::from(vec![b' '; 16]))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value =
        serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("100000 bytes"),
        "{body}"
    );

    // Over the limit without a Content-Length (chunked): the read stops at the limit.
    let (status, body) = send(app.clone(), "application/json", vec![b' '; 300_000]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].is_string(), "{body}");

    let (status, body) = send(app.clone(), "image/png", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("empty"), "{body}");

    // Raw bytes of no declared type are sniffed like any other.
    let (roomy, _) = self::app(15 * 1024 * 1024);
    let (status, body) = send(roomy, "application/octet-stream", png(100, 100)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    for query in ["limit=abc", "limit=0", "limit=100000", "cursor=bogus"] {
        let response = app
            .clone()
            .oneshot(
                Request::get(format!("/images?{query}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap())
                .unwrap_or_else(|e| panic!("{query}: not JSON: {e}"));
        assert!(body["error"].is_string(), "{query}: {body}");
    }
}

/// A body with `headers` (name, value) posted to /images; the status and JSON answer.
async fn post(
    app: Router,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::post("/images");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn multipart(boundary: &str, file_name: Option<&str>, image: &[u8]) -> Vec<u8> {
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .into_bytes();
    let disposition = match file_name {
        Some(name) => format!("form-data; name=\"file\"; filename=\"{name}\""),
        None => "form-data; name=\"file\"".to_owned(),
    };
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: image/png\r\n\r\n"
        )
        .into_bytes(),
    );
    body.extend_from_slice(image);
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    body
}

/// The two ways curl sends a file most often: `--data-binary @x` (labelled a form body, the
/// bytes untouched) and `-F file=@x` (multipart). Both are images, and both keep the file's
/// name, made safe, in their own folder under the API's prefix.
#[tokio::test]
async fn curl_form_and_multipart_uploads_are_accepted_and_keep_the_file_name() {
    let (app, _) = app(15 * 1024 * 1024);
    let (status, body) = post(
        app.clone(),
        &[("content-type", "application/x-www-form-urlencoded")],
        png(100, 100),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let boundary = "------------------------d74496d66958873e";
    let (status, body) = post(
        app.clone(),
        &[(
            "content-type",
            &format!("multipart/form-data; boundary={boundary}"),
        )],
        multipart(boundary, Some("My Holiday (1).JPG"), &png(120, 100)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let key = body["key"].as_str().unwrap();
    // The extension is the bytes' format, not the name's.
    let rest = key.strip_prefix("incoming/api/").unwrap();
    let (folder, name) = rest.split_once('/').unwrap();
    assert_eq!(folder.len(), 36, "a uuid: {key}");
    assert_eq!(name, "My-Holiday-1.png");

    // Raw bytes name themselves through X-Filename (as the console sends it) or
    // Content-Disposition; a hostile name stays inside the folder.
    for (header, value, expected) in [
        ("x-filename", "..%2F..%2Fthumbnails%2Fx.png", "x.png"),
        (
            "x-filename",
            "caf%C3%A9%20au%20lait.png",
            "café-au-lait.png",
        ),
        (
            "content-disposition",
            "attachment; filename=\"<script>.png\"",
            "script.png",
        ),
    ] {
        let (status, body) = post(
            app.clone(),
            &[("content-type", "image/png"), (header, value)],
            png(100, 100),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let key = body["key"].as_str().unwrap();
        assert!(key.starts_with("incoming/api/"), "{key}");
        assert_eq!(key.matches('/').count(), 3, "{key}");
        assert!(key.ends_with(&format!("/{expected}")), "{value}: {key}");
    }
    // A name with nothing usable in it: the uuid alone, as before.
    let (_, body) = post(
        app.clone(),
        &[("content-type", "image/png"), ("x-filename", "%2F..%2F")],
        png(100, 100),
    )
    .await;
    assert_eq!(
        body["key"].as_str().unwrap().matches('/').count(),
        2,
        "{body}"
    );

    // Multipart is a form a cross-site page can post without asking: refused like the rest.
    let (status, _) = post(
        app.clone(),
        &[
            (
                "content-type",
                &format!("multipart/form-data; boundary={boundary}"),
            ),
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080"),
        ],
        multipart(boundary, Some("x.png"), &png(100, 100)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A broken multipart body is a 400 that says so; one that is not an image, a 415.
    let (status, body) = post(
        app.clone(),
        &[("content-type", "multipart/form-data; boundary=nothere")],
        b"garbage".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = post(
        app,
        &[(
            "content-type",
            &format!("multipart/form-data; boundary={boundary}"),
        )],
        multipart(boundary, Some("notes.png"), b"not an image at all"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// A guess such as `/gallery` leads somewhere: a browser gets a page with the navigation, a
/// client a JSON error naming the routes there are.
#[tokio::test]
async fn unknown_paths_are_a_page_with_the_navigation_or_json() {
    let (app, _) = app(15 * 1024 * 1024);
    let (status, headers, body) = get(&app, "/gallery", "text/html").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        body.contains("<nav>") && body.contains("href=\"/images\"") && body.contains("/gallery"),
        "{body}"
    );
    let (status, _, body) = get(&app, "/a&b", "text/html").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("<code>/a&amp;b</code>"),
        "the path is escaped: {body}"
    );
    let (status, _, body) = get(&app, "/gallery", "application/json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("/images"),
        "{body}"
    );
}

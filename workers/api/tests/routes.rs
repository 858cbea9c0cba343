//! The API against in-memory ports.
use std::sync::Arc;

use axum::{
    body::{to_bytes, Body},
    http::{Request, StatusCode},
    Router,
};
use base64::Engine;
use imgflow_api::{router, ApiState};
use imgflow_runtime::{
    fakes::{FakeObjectStore, FakeTable},
    image_probe::Limits,
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

fn app(max_bytes: u64) -> (Router, Arc<ApiState<FakeObjectStore, FakeTable>>) {
    let state = Arc::new(ApiState {
        store: FakeObjectStore::default(),
        table: FakeTable::default(),
        bucket: "b".into(),
        key_prefix: "incoming/api/".into(),
        limits: Limits {
            max_bytes,
            ..Limits::default()
        },
    });
    (router(state.clone()), state)
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
        .oneshot(Request::get("/images/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

//! Who may call: the API key (for every path but `/healthz`), loopback host names when the
//! API listens on loopback (against DNS rebinding), and same-origin form posts.
use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{
        header::{AUTHORIZATION, HOST, ORIGIN, WWW_AUTHENTICATE},
        HeaderMap, HeaderValue, StatusCode,
    },
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use base64::Engine;
use serde_json::json;

use crate::{errors::ApiError, ApiState};

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

pub(crate) async fn require_loopback_host<
    S: Send + Sync + 'static,
    T: Send + Sync + 'static,
    C: Send + Sync + 'static,
>(
    State(state): State<Arc<ApiState<S, T, C>>>,
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

pub(crate) async fn require_key<
    S: Send + Sync + 'static,
    T: Send + Sync + 'static,
    C: Send + Sync + 'static,
>(
    State(state): State<Arc<ApiState<S, T, C>>>,
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

/// Whether a state-changing request comes from this origin: browsers send `Origin` (and
/// `Sec-Fetch-Site`) with every POST; a client sending neither is not a browser tricked by
/// another site.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
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

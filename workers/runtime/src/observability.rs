//! Metrics and health: every process serves, on a loopback-by-default port,
//! `/metrics` (Prometheus text format), `/healthz` (the process is alive) and `/readyz` (a
//! worker's latest receive from its queue succeeded; 503 with the reason otherwise).
//! `--healthcheck` on any binary probes its own `/healthz` and exits 0 or 1, for container
//! health checks in an image with no shell tools.
//!
//! Metric names (all labelled by `stage`):
//! - `imgflow_messages_received_total`, `_succeeded_total`, `_retried_total`,
//!   `_dead_lettered_total{error_class}`, `_released_total`
//! - `imgflow_images_rejected_total{status}`: images recorded `rejected` or `missing`
//! - `imgflow_handler_duration_seconds` (histogram), `imgflow_in_flight` (gauge)
//! - `imgflow_end_to_end_seconds` (histogram, store stage): S3 event time → labels stored
//! - `imgflow_detector_calls_total{detector, outcome}`
//! - `imgflow_aws_calls_total{service, operation}`: every HTTP request to AWS, retries included,
//!   counted by an SDK interceptor (`imgflow_aws::CountAwsCalls`) so no call site can be
//!   forgotten.
use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use axum::{http::StatusCode, routing::get, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from a fast handler to a slow detector call.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the process-wide Prometheus recorder. Call once, at start.
pub fn install() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())
}

/// A readiness check: resolves to `Ok` when the process can do its work now, or why not.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The routes `/metrics`, `/healthz`, `/readyz`.
pub fn router(handle: PrometheusHandle, ready: ReadyCheck) -> Router {
    Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = Arc::clone(&ready);
                async move {
                    match ready().await {
                        Ok(()) => (StatusCode::OK, "ready".to_owned()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
                    }
                }
            }),
        )
}

/// Serves the routes on `addr` in the background; the address it listens on (port 0 takes a
/// free one). A port already taken (another process of the same stage on this host) stops the
/// process: running on would advertise, and let `--healthcheck` probe, the other one's.
pub async fn serve(addr: SocketAddr, router: Router) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!(
            "IMGFLOW_METRICS_ADDR={addr} cannot be used ({e}; another process of this stage \
             on this host?): give each process its own port, 127.0.0.1:0 for any free one (the \
             log names it), or off"
        )
    })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(addr = %local, "serving /metrics, /healthz and /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    });
    Ok(local)
}

/// Installs metrics and serves them for a worker, ready while its receives succeed: the
/// address served, `None` when off.
pub async fn start_for_worker(
    config: &crate::config::WorkerConfig,
    health: Arc<crate::consumer::ReceiveHealth>,
) -> Result<Option<SocketAddr>, String> {
    let handle = match install() {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            return Ok(None);
        }
    };
    let Some(addr) = config.metrics_addr else {
        return Ok(None);
    };
    let ready: ReadyCheck = Arc::new(move || {
        let status = health.status();
        Box::pin(std::future::ready(status))
    });
    serve(addr, router(handle, ready)).await.map(Some)
}

/// Whether the command line asks for [`healthcheck`].
pub fn healthcheck_requested() -> bool {
    std::env::args().skip(1).any(|a| a == "--healthcheck")
}

/// Probes `GET /healthz` of a process serving on `addr` (this binary's own, started with the
/// same environment) and returns the exit code for a container health check: 0 when it answers
/// 200 within two seconds, 1 otherwise. Plain blocking TCP: no runtime, no shell tools.
pub fn healthcheck(addr: Option<SocketAddr>) -> std::process::ExitCode {
    use std::io::{Read, Write};
    let Some(mut addr) = addr else {
        eprintln!("healthcheck: the health port is off (IMGFLOW_METRICS_ADDR=off)");
        return std::process::ExitCode::FAILURE;
    };
    if addr.port() == 0 {
        eprintln!(
            "healthcheck: IMGFLOW_METRICS_ADDR={addr} takes any free port, which only the \
             process's log names; give it a fixed port to probe"
        );
        return std::process::ExitCode::FAILURE;
    }
    // A server on the wildcard address is reached on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = std::time::Duration::from_secs(2);
    let probe = || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head)?;
        Ok(String::from_utf8_lossy(&head[..n]).into_owned())
    };
    match probe() {
        Ok(head) if head.starts_with("HTTP/1.1 200") => std::process::ExitCode::SUCCESS,
        Ok(head) => {
            eprintln!(
                "healthcheck: http://{addr}/healthz answered {:?}",
                head.lines().next()
            );
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: http://{addr}/healthz: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `imgflow-api`: HTTP uploads into the pipeline and reads of its results.
use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use axum::http::StatusCode;
use imgflow_api::{
    pipeline::PipelineProbe,
    routes::router_with,
    serve::{serve, ServeLimits},
    ApiState,
};
use imgflow_aws::{s3::S3Store, AwsClients};
use imgflow_imaging::probe::Limits;
use imgflow_runtime::{
    config::{
        env_in_range, env_listen_addr, env_opt, log_format_is_json, max_decoded_bytes_from_env,
        Names,
    },
    observability, shutdown, telemetry, usage, PortErrorKind,
};
use tokio::sync::Semaphore;
use tower_http::{
    timeout::TimeoutLayer,
    trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer},
    LatencyUnit,
};

#[tokio::main]
async fn main() -> ExitCode {
    usage::finish(run().await)
}

async fn run() -> anyhow::Result<ExitCode> {
    if let Some(code) = usage::handle_args(
        "api",
        "HTTP uploads into the pipeline, reads of its results, and the web console",
    ) {
        return Ok(code);
    }
    let names = Names::from_env()?;
    let addr = env_listen_addr("IMGFLOW_API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
    if observability::healthcheck_requested() {
        return Ok(observability::healthcheck(Some(addr)));
    }
    let max_bytes = env_in_range(
        "IMGFLOW_MAX_IMAGE_BYTES",
        Limits::default().max_bytes,
        1..=15 * 1024 * 1024,
    )?;
    let api_key = env_opt("IMGFLOW_API_KEY");
    // Without a key anyone who can reach the port could upload and read every image.
    if !addr.ip().is_loopback() && api_key.is_none() {
        anyhow::bail!(
            "IMGFLOW_API_ADDR={addr} is reachable beyond this machine: set IMGFLOW_API_KEY \
             (clients send it as x-api-key, Authorization: Bearer, or the Basic password)"
        );
    }
    if api_key.as_ref().is_some_and(|k| k.len() < 16) {
        anyhow::bail!("IMGFLOW_API_KEY must be at least 16 characters");
    }
    telemetry::init(log_format_is_json()?);
    let aws = AwsClients::from_env().await?;
    let metrics = observability::install().map_err(anyhow::Error::msg)?;
    let table = aws.image_table(&names);
    let ready_table = table.clone();
    let provision = PipelineProbe::new(aws.clone(), names.clone()).command("provision");
    let ready: observability::ReadyCheck = Arc::new(move || {
        let table = ready_table.clone();
        let provision = provision.clone();
        Box::pin(async move {
            table.reachable().await.map_err(|e| match e.kind {
                PortErrorKind::NotFound => {
                    format!("{e}: the table is missing; run `{provision}`")
                }
                _ => e.to_string(),
            })
        })
    });
    let mut state = ApiState::new(
        S3Store::new(aws.s3.clone()),
        table,
        aws.catalog(&names),
        names.bucket.clone(),
        format!("{}api/", names.incoming_prefix()),
        Limits {
            max_bytes,
            max_decoded_bytes: max_decoded_bytes_from_env()?,
            ..Limits::default()
        },
    );
    state.pipeline = Some(PipelineProbe::new(aws.clone(), names.clone()));
    state.api_key = api_key;
    state.loopback_hosts_only = addr.ip().is_loopback();
    state.upload_permits = Arc::new(Semaphore::new(env_in_range(
        "IMGFLOW_API_MAX_UPLOADS",
        8,
        1..=1024,
    )?));
    let request_timeout = Duration::from_secs(env_in_range(
        "IMGFLOW_API_REQUEST_TIMEOUT_SECS",
        60,
        1..=3600,
    )?);
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(env_in_range(
            "IMGFLOW_API_HEADER_TIMEOUT_SECS",
            10,
            1..=300,
        )?),
        max_connections: env_in_range("IMGFLOW_API_MAX_CONNECTIONS", 1024, 1..=65_536)?,
        shutdown_deadline: Duration::from_secs(env_in_range(
            "IMGFLOW_DRAIN_DEADLINE_SECS",
            20,
            0..=3600,
        )?),
    };
    let state = Arc::new(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (IMGFLOW_API_ADDR)"))?;
    tracing::info!(
        %addr,
        console = %format!("http://{addr}/"),
        prefix = %names.prefix,
        bucket = %names.bucket,
        "api listening"
    );
    let mut shutdown = shutdown::on_signals();
    // Same port: the API is a web server already; `/metrics` and `/readyz` need the key too.
    // One line per request: method, path, status and time (4xx included).
    let access_log = TraceLayer::new_for_http()
        .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(tracing::Level::INFO)
                .latency_unit(LatencyUnit::Millis),
        );
    let app = router_with(state, observability::router(metrics, ready))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(access_log);
    serve(
        listener,
        app,
        limits,
        async move { shutdown.requested().await },
    )
    .await;
    Ok(ExitCode::SUCCESS)
}

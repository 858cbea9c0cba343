//! `imgflow-api`: HTTP uploads into the pipeline and reads of its results.
use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use imgflow_api::{pipeline::PipelineProbe, router, ApiState};
use imgflow_runtime::{
    aws::{dynamodb::DynamoImageTable, s3::S3Store, AwsClients},
    config::{env_in_range, env_opt, env_or, log_format_is_json, Names},
    image_probe::Limits,
    observability, shutdown, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let names = Names::from_env()?;
    let addr: SocketAddr = env_or("IMGFLOW_API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
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
    let aws = AwsClients::from_env().await;
    let metrics = observability::install().map_err(anyhow::Error::msg)?;
    let ready_client = aws.dynamodb.clone();
    let ready_table = names.table.clone();
    let ready: observability::ReadyCheck = Arc::new(move || {
        let (client, table) = (ready_client.clone(), ready_table.clone());
        // A read of a key that never exists: needs only the dynamodb:GetItem the API has.
        Box::pin(async move {
            let key = aws_sdk_dynamodb::types::AttributeValue::S("readyz".into());
            client
                .get_item()
                .table_name(table)
                .key("id", key)
                .send()
                .await
                .is_ok()
        })
    });
    let mut state = ApiState::new(
        S3Store::new(aws.s3.clone()),
        DynamoImageTable::new(aws.dynamodb.clone(), names.table.clone())
            .with_index(names.index_table.clone()),
        names.bucket.clone(),
        format!("{}api/", names.incoming_prefix()),
        Limits {
            max_bytes,
            ..Limits::default()
        },
    );
    state.pipeline = Some(PipelineProbe::new(aws.clone(), names.clone()));
    state.api_key = api_key;
    let state = Arc::new(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (IMGFLOW_API_ADDR)"))?;
    tracing::info!(%addr, "api listening");
    let mut shutdown = shutdown::on_signals();
    // Same port: the API is a web server already.
    let app = router(state).merge(observability::router(metrics, ready));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.requested().await })
        .await
        .context("serving HTTP")?;
    Ok(())
}

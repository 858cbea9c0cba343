//! `imgflow-api`: HTTP uploads into the pipeline and reads of its results.
use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use imgflow_api::{router, ApiState};
use imgflow_runtime::{
    aws::{dynamodb::DynamoImageTable, s3::S3Store, AwsClients},
    config::{env_in_range, env_or, log_format_is_json, Names},
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
    let state = Arc::new(ApiState {
        store: S3Store::new(aws.s3.clone()),
        table: DynamoImageTable::new(aws.dynamodb.clone(), names.table.clone()),
        bucket: names.bucket.clone(),
        key_prefix: format!("{}api/", names.incoming_prefix()),
        limits: Limits {
            max_bytes,
            ..Limits::default()
        },
    });
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

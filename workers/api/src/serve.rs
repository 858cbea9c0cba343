//! The HTTP server: the router on hyper's HTTP/1 connections, with the limits `axum::serve`
//! leaves off. Without a timer hyper never times out a request header, so a client sending
//! half a header holds a connection (and a file descriptor) for ever, and a graceful shutdown
//! waits on it until the orchestrator kills the process mid-upload.
use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A request's header must arrive within this; otherwise the connection is closed.
    pub header_read_timeout: Duration,
    /// Connections open at once; more wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// After shutdown is requested, how long requests in progress may take to finish.
    pub shutdown_deadline: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            shutdown_deadline: Duration::from_secs(20),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets
/// requests in progress finish for at most `limits.shutdown_deadline`, and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        open = graceful.count(),
        "api stopping: no new connections; finishing requests in progress"
    );
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("api stopped"),
        _ = tokio::time::sleep(limits.shutdown_deadline) => {
            tracing::warn!(deadline = ?limits.shutdown_deadline, "shutdown deadline passed; closing the remaining connections");
        }
    }
}

//! The metrics listener (`--metrics-listen`): plain HTTP/1.1 on an address of its own that
//! answers `/metrics`, `/healthz` and `/readyz` (`http::handle_metrics_listener`), so that the
//! relay's public address need not expose its metrics. It keeps serving through a shutdown's
//! drain, where `/readyz` answers 503, and stops when the relay has stopped. It is outside the
//! relay's connection limits and has its own: a few connections at once, each answered within
//! the upgrade timeout and then closed.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::http;
use crate::state::Shared;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;

/// The running listener; dropping it stops the listener and every connection it serves.
pub(crate) struct MetricsListener {
    task: JoinHandle<()>,
}

impl Drop for MetricsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `listener` on a spawned task until the returned handle is dropped.
pub(crate) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> MetricsListener {
    MetricsListener {
        task: tokio::spawn(accept(listener, shared)),
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Owned here, so that aborting this task ends the connections too.
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok((tcp, _)) => {
                connections.spawn(serve(tcp, shared.clone(), permit));
            }
            Err(e) => {
                warn!(error = %e, "metrics listener: accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(tcp: TcpStream, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let limit = shared.config.limits.upgrade_timeout;
    let svc_shared = shared.clone();
    let service = service_fn(move |req| {
        let response = http::handle_metrics_listener(&req, &svc_shared);
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limit)
        .keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    match tokio::time::timeout(limit, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "metrics connection ended with an error"),
        Err(_) => debug!("metrics connection timed out"),
    }
}

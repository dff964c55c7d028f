//! The listener: accepts TCP connections under a global connection limit and a per-IP limit
//! (with backoff on accept errors), sets `TCP_NODELAY`, terminates TLS, serves HTTP/1.1 with
//! hyper until the WebSocket upgrade (all within the upgrade timeout), and runs graceful
//! shutdown: stop accepting, let live tunnels finish for the grace period, then close the rest
//! with 1001 and wait for every task.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::contact::registry::Contacts;
use crate::contact::store::ContactStore;
use crate::error::ServerError;
use crate::http::{self, Deferred};
use crate::metrics::Rejection;
use crate::metrics_listener;
use crate::state::{reached, ConnGuard, Phase, Shared, State};
use crate::table::Table;

/// See [`crate::run`]; `metrics` is the bound `config.metrics_listen`, if any.
pub(crate) async fn run(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    let local = listener
        .local_addr()
        .map_err(ServerError::io("reading the listener address"))?;
    let tls = config
        .tls
        .as_ref()
        .map(|t| crate::tls::acceptor(&t.cert, &t.key))
        .transpose()?;
    if !plaintext_allowed(local, tls.is_some(), config.insecure_plaintext) {
        return Err(ServerError::PlaintextNotLoopback { addr: local });
    }
    let (contact_store, restored) = match &config.contact_store {
        Some(path) => {
            let (store, keys) = ContactStore::open(path)?;
            (Some(store), keys)
        }
        None => (None, Vec::new()),
    };
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    let limits = config.limits.clone();
    let mut contacts = Contacts::new(
        config.routing_id,
        limits.max_contacts,
        limits.max_pending_wakeups,
        limits.contact_expiry,
        limits.unconfirmed_contact_expiry,
    );
    contacts.handle_restore(restored, tokio::time::Instant::now().into_std());
    let state = State {
        table: Table::new(limits.max_tunnels),
        contacts,
    };
    let shared = Arc::new(Shared::new(config, state, contact_store, phase_rx));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());
    // Serves until this function returns, the drain included.
    let _metrics = metrics.map(|l| metrics_listener::spawn(l, shared.clone()));
    info!(
        addr = %local,
        metrics = %metrics_addr.map_or_else(|| "on this address".to_string(), |a| a.to_string()),
        routing_id = %shared.config.routing_id,
        tls = tls.is_some(),
        contacts_restored = shared.state().contacts.len(),
        "tunnel server listening"
    );

    tokio::pin!(shutdown);
    let mut accept = Acceptor {
        listener,
        tls,
        shared: shared.clone(),
        permits,
        backoff: Duration::from_millis(5),
    };
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = accept.next(Some(&drain_tx)) => {}
        }
    }
    // Draining: not ready, and nothing new (503), but the listener stays open so that the
    // peer of a tunnel waiting here can still join it: the phone that opened /cable/new a
    // moment ago has put this routing ID in its advert, and its desktop connects here.
    // Connections accepted while draining do not hold the drain open; a joiner is held by
    // its tunnel.
    info!("shutting down: not ready; waiting tunnels may still be joined, live ones finish");
    let _ = phase_tx.send(Phase::Draining);
    drop(drain_tx);
    let grace = tokio::time::sleep(limits.shutdown_grace);
    tokio::pin!(grace);
    let drained = loop {
        tokio::select! {
            _ = drain_rx.recv() => break true,
            () = &mut grace => break false,
            () = accept.next(None) => {}
        }
    };
    drop(accept);
    if !drained {
        info!("grace period over; closing the remaining tunnels");
        let _ = phase_tx.send(Phase::Closing);
        let _ = drain_rx.recv().await;
    }
    info!("shut down");
    Ok(())
}

/// The main listener with what accepting needs.
struct Acceptor {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    backoff: Duration,
}

impl Acceptor {
    /// Accepts one connection and spawns its task, or backs off after an accept error.
    /// `drain` is the sender shutdown waits on; `None` while draining (see [`ConnGuard`]).
    async fn next(&mut self, drain: Option<&mpsc::Sender<()>>) {
        let (tcp, peer) = match self.listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE/ENFILE: wait for descriptors to free up.
                warn!(error = %e, "accept failed; backing off {:?}", self.backoff);
                tokio::time::sleep(self.backoff).await;
                self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
                return;
            }
        };
        self.backoff = Duration::from_millis(5);
        self.shared.metrics.connection();
        let Some(guard) = ConnGuard::admit(&self.shared, &self.permits, drain, peer) else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(tcp, self.tls.clone(), guard));
    }
}

/// Plain `ws://` only on loopback or when explicitly asked for.
fn plaintext_allowed(local: SocketAddr, tls: bool, insecure_plaintext: bool) -> bool {
    tls || insecure_plaintext || local.ip().is_loopback()
}

/// One accepted connection: TLS, HTTP until the upgrade, then its WebSocket task in this same
/// task. The phases before the upgrade are boxed so that their memory (hyper's connection,
/// rustls' handshake state) is freed when they end and only the WebSocket state stays.
async fn connection(tcp: TcpStream, tls: Option<TlsAcceptor>, guard: ConnGuard) {
    let guard = Arc::new(guard);
    let after = Deferred::default();
    match tls {
        Some(acceptor) => Box::pin(serve_tls(tcp, acceptor, guard, after.clone())).await,
        None => Box::pin(serve(tcp, guard, after.clone())).await,
    }
    let task = after.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(task) = task {
        task.await;
    }
}

async fn serve_tls(tcp: TcpStream, acceptor: TlsAcceptor, guard: Arc<ConnGuard>, after: Deferred) {
    let limit = guard.shared().config.limits.upgrade_timeout;
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve(stream, guard, after).await,
        Ok(Err(e)) => debug!(error = %e, "tls handshake failed"),
        Err(_) => guard.shared().metrics.rejected(Rejection::UpgradeTimeout),
    }
}

/// Serves HTTP/1.1 on one connection until it upgrades, closes, times out or the grace period
/// ends. A drain does not cut it: a request in progress may be a joiner for a waiting tunnel
/// (draining refuses everything else with 503 and `Connection: close`). An upgrade leaves its
/// WebSocket task in `after`.
async fn serve<S>(io: S, guard: Arc<ConnGuard>, after: Deferred)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = guard.shared().clone();
    let limit = shared.config.limits.upgrade_timeout;
    let mut phase = shared.phase.clone();
    let svc_guard = guard.clone();
    let svc_after = after;
    let service = service_fn(move |req| {
        let response = http::handle(req, &svc_guard, &svc_after);
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limit)
        .max_buf_size(16 * 1024);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    drop(guard);
    tokio::select! {
        result = tokio::time::timeout(limit, conn) => match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_timeout() => shared.metrics.rejected(Rejection::UpgradeTimeout),
            Ok(Err(e)) => debug!(error = %e, "http connection ended with an error"),
            Err(_) => shared.metrics.rejected(Rejection::UpgradeTimeout),
        },
        () = reached(&mut phase, Phase::Closing) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_only_on_loopback_or_when_asked() {
        let public: SocketAddr = "0.0.0.0:443".parse().unwrap();
        let v6_loopback: SocketAddr = "[::1]:8080".parse().unwrap();
        assert!(!plaintext_allowed(public, false, false));
        assert!(plaintext_allowed(public, true, false));
        assert!(plaintext_allowed(public, false, true));
        assert!(plaintext_allowed(v6_loopback, false, false));
        assert!(plaintext_allowed(
            "127.0.0.1:1".parse().unwrap(),
            false,
            false
        ));
    }
}

//! The listener: accepts TCP connections under a global connection limit and a per-IP limit
//! (with backoff on accept errors), sets `TCP_NODELAY`, terminates TLS, serves HTTP/1.1 with
//! hyper until the WebSocket upgrade (all within the upgrade timeout), and runs graceful
//! shutdown: stop accepting, let live tunnels finish for the grace period, then close the rest
//! with 1001 and wait for every task.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::contact_store::ContactStore;
use crate::error::ServerError;
use crate::metrics::{Gauges, Metrics, Rejection};
use crate::relay::Joiner;
use crate::table::{Contacts, Table, CONTACT_RANDOM_LEN};

/// Where the server is in its life; tasks watch this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Accepting and relaying.
    Running,
    /// Not accepting; live tunnels may finish; registrations and unupgraded connections close.
    Draining,
    /// The grace period is over: everything closes with 1001.
    Closing,
}

/// The mutable tables, behind one lock that is never held across an `.await`.
pub(crate) struct State {
    pub(crate) table: Table<Joiner>,
    pub(crate) contacts: Contacts,
}

/// What every task shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    contact_store: Option<Mutex<ContactStore>>,
    pub(crate) metrics: Metrics,
    pub(crate) phase: watch::Receiver<Phase>,
    state: Mutex<State>,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Token buckets for minting contact IDs, per client IP.
    registrations: Mutex<HashMap<IpAddr, Bucket>>,
}

/// A token bucket refilled at `rate` per minute up to `rate` tokens.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

/// Buckets kept before full (idle) ones are dropped.
const MAX_BUCKETS: usize = 10_000;

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the tables inconsistent in a way that
        // matters more than stopping the relay would, so recover the guard.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Persists a newly minted contact ID (if a store is configured). A short blocking append
    /// to the page cache, on the request path.
    pub(crate) fn contact_minted(&self, key: &[u8; CONTACT_RANDOM_LEN]) {
        if let Some(store) = &self.contact_store {
            store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record_mint(key);
        }
    }

    /// Persists a revocation (if a store is configured).
    pub(crate) fn contact_revoked(&self, key: &[u8; CONTACT_RANDOM_LEN]) {
        if let Some(store) = &self.contact_store {
            store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record_revoke(key);
        }
    }

    pub(crate) fn gauges(&self) -> Gauges {
        let s = self.state();
        Gauges {
            tunnels_open: s.table.len(),
            tunnels_paired: s.table.paired(),
            contacts: s.contacts.len(),
            registrations_connected: s.contacts.connected(),
        }
    }
}

/// Held by every task that serves a connection: releases the connection slots and keeps
/// shutdown waiting until it is dropped.
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
    _drain: mpsc::Sender<()>,
}

impl ConnGuard {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether this client may mint another contact ID now (the per-IP rate limit).
    pub(crate) fn allow_registration(&self, now: std::time::Instant) -> bool {
        let rate = self.shared.config.limits.registrations_per_ip_per_minute;
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        let refill = |b: &Bucket| {
            let minutes = now.saturating_duration_since(b.at).as_secs_f64() / 60.0;
            (b.tokens + minutes * rate).min(rate)
        };
        let mut map = self
            .shared
            .registrations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_BUCKETS {
            map.retain(|_, b| refill(b) < rate);
        }
        let bucket = map.entry(self.ip).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let tokens = refill(bucket);
        if tokens < 1.0 {
            return false;
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        true
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.shared.config.limits.max_connections_per_ip == 0 {
            return;
        }
        let mut map = self
            .shared
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Waits until the server reaches `phase` (or is gone).
pub(crate) async fn reached(rx: &mut watch::Receiver<Phase>, phase: Phase) {
    let _ = rx.wait_for(|p| *p >= phase).await;
}

/// See [`crate::run`].
pub(crate) async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    let local = listener
        .local_addr()
        .map_err(ServerError::io("reading the listener address"))?;
    let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    if !plaintext_allowed(local, tls.is_some(), config.insecure_plaintext) {
        return Err(ServerError::PlaintextNotLoopback { addr: local });
    }
    let (contact_store, restored) = match &config.contact_store {
        Some(path) => {
            let (store, keys) = ContactStore::open(path)?;
            (Some(Mutex::new(store)), keys)
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
    );
    contacts.handle_restore(restored, tokio::time::Instant::now().into_std());
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            table: Table::new(limits.max_tunnels),
            contacts,
        }),
        contact_store,
        metrics: Metrics::default(),
        phase: phase_rx,
        per_ip: Mutex::new(HashMap::new()),
        registrations: Mutex::new(HashMap::new()),
        config,
    });
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    info!(
        addr = %local,
        routing_id = %shared.config.routing_id,
        tls = tls.is_some(),
        contacts_restored = shared.state().contacts.len(),
        "tunnel server listening"
    );

    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Usually EMFILE/ENFILE: wait for descriptors to free up.
                        warn!(error = %e, "accept failed; backing off {backoff:?}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                };
                backoff = Duration::from_millis(5);
                shared.metrics.connection();
                let Some(guard) = admit(&shared, &permits, &drain_tx, peer) else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                tokio::spawn(connection(tcp, tls.clone(), guard));
            }
        }
    }
    drop(listener);
    info!("shutting down: no longer accepting; live tunnels may finish");
    let _ = phase_tx.send(Phase::Draining);
    drop(drain_tx);
    if tokio::time::timeout(limits.shutdown_grace, drain_rx.recv())
        .await
        .is_err()
    {
        info!("grace period over; closing the remaining tunnels");
        let _ = phase_tx.send(Phase::Closing);
        let _ = drain_rx.recv().await;
    }
    info!("shut down");
    Ok(())
}

/// Plain `ws://` only on loopback or when explicitly asked for.
fn plaintext_allowed(local: SocketAddr, tls: bool, insecure_plaintext: bool) -> bool {
    tls || insecure_plaintext || local.ip().is_loopback()
}

/// Applies the connection limits; `None` drops the connection.
fn admit(
    shared: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    drain: &mpsc::Sender<()>,
    peer: SocketAddr,
) -> Option<ConnGuard> {
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        shared.metrics.rejected(Rejection::ConnectionLimit);
        debug!("connection limit reached; dropping a connection");
        return None;
    };
    let ip = peer.ip();
    let per_ip = shared.config.limits.max_connections_per_ip;
    if per_ip != 0 {
        let mut map = shared.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= per_ip {
            drop(map);
            shared.metrics.rejected(Rejection::PerIpLimit);
            debug!("per-IP connection limit reached; dropping a connection");
            return None;
        }
        *n += 1;
    }
    Some(ConnGuard {
        shared: shared.clone(),
        ip,
        _permit: permit,
        _drain: drain.clone(),
    })
}

/// One accepted connection: TLS, HTTP until the upgrade, then its WebSocket task in this same
/// task. The phases before the upgrade are boxed so that their memory (hyper's connection,
/// rustls' handshake state) is freed when they end and only the WebSocket state stays.
async fn connection(tcp: TcpStream, tls: Option<TlsAcceptor>, guard: ConnGuard) {
    let guard = Arc::new(guard);
    let after = crate::http::Deferred::default();
    match tls {
        Some(acceptor) => Box::pin(serve_tls(tcp, acceptor, guard, after.clone())).await,
        None => Box::pin(serve(tcp, guard, after.clone())).await,
    }
    let task = after.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(task) = task {
        task.await;
    }
}

async fn serve_tls(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    guard: Arc<ConnGuard>,
    after: crate::http::Deferred,
) {
    let limit = guard.shared.config.limits.upgrade_timeout;
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve(stream, guard, after).await,
        Ok(Err(e)) => debug!(error = %e, "tls handshake failed"),
        Err(_) => guard.shared.metrics.rejected(Rejection::UpgradeTimeout),
    }
}

/// Serves HTTP/1.1 on one connection until it upgrades, closes, times out or the server
/// starts draining; an upgrade leaves its WebSocket task in `after`.
async fn serve<S>(io: S, guard: Arc<ConnGuard>, after: crate::http::Deferred)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = guard.shared.clone();
    let limit = shared.config.limits.upgrade_timeout;
    let mut phase = shared.phase.clone();
    let svc_guard = guard.clone();
    let svc_after = after;
    let service = service_fn(move |req| {
        let response = crate::http::handle(req, &svc_guard, &svc_after);
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
        () = reached(&mut phase, Phase::Draining) => {}
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

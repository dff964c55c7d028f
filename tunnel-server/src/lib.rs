//! A self-hostable caBLE v2 / CTAP 2.2 hybrid tunnel relay (docs/PROTOCOL.md#tunnel, #contact).
//!
//! Phones open `/cable/new/<tunnel id>`, clients open `/cable/connect/<routing id>/<tunnel id>`,
//! and the relay forwards binary WebSocket messages verbatim between the pair; it never parses
//! or decrypts them. Linked phones hold a registration socket (`/cable/register`) through
//! which `/cable/contact/<contact id>` wakes them; see the crate README, "Contact channel".
//!
//! # Starting a server
//!
//! A program (the binary, the demo, the end-to-end tests) either calls [`run`] with its own
//! listener and shutdown future, or starts one on `127.0.0.1:0` in-process with
//! [`RunningServer::start`] (alias [`spawn_for_testing`]):
//!
//! ```no_run
//! # async fn demo() -> Result<(), tunnel_server::ServerError> {
//! let server = tunnel_server::RunningServer::start(tunnel_server::Config::default()).await?;
//! let url = server.ws_url(); // "ws://127.0.0.1:<port>"
//! # let _ = url;
//! server.shutdown().await?; // graceful: stop accepting, drain, close with 1001
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: `Config`, limits and the command-line flags.
//! - `server`: the listener: accept loop, TLS, HTTP serving, shutdown.
//! - `http`: routing and status codes; `origin`: which `Origin` headers it accepts.
//!   `relay`: the WebSocket tasks.
//! - `state`: what the tasks share (phase, tables, metrics) and the per-connection guard.
//! - `table`: the routing table, a plain struct.
//! - `contact`: the contact channel: the contact registry, registration secrets, the mint
//!   limit, the contact store, the endpoints' decisions and the registration socket.
//! - [`fd_limit`]: the open-file limit against `max_connections`, reconciled at startup.
//! - [`fleet`]: the routing-ID rule of a StatefulSet fleet and the router configuration it
//!   renders.
//! - `metrics`: counters and Prometheus text; `metrics_listener`: `--metrics-listen`.
//! - `tls`: rustls from PEM. [`domain`]: domain names.
//!
//! Module imports run one way, listener → HTTP routing → tunnels → state
//! (`server` → `http` → `relay` → `state`); the tidy test (`tests/tests/tidy.rs`) checks there
//! is no cycle.

pub mod config;
mod contact;
pub mod domain;
mod error;
pub mod fd_limit;
pub mod fleet;
mod http;
mod lent;
mod metrics;
mod metrics_listener;
mod origin;
mod relay;
mod server;
mod state;
mod table;
mod tls;

use std::future::Future;
use std::net::SocketAddr;

pub use config::{Config, Limits, LogFormat, ServeArgs, TlsConfig};
pub use error::ServerError;
pub use hybrid_protocol::tunnel::RoutingId;

/// Serves the relay on `listener` until `shutdown` completes, then drains: answers 503 to
/// anything new while still letting waiting tunnels be joined, lets live tunnels finish for
/// `limits.shutdown_grace`, closes the rest with 1001 (going away) and returns once every
/// tunnel has ended. With `config.routing_id_from_hostname`, the routing ID is this host's
/// ([`Config::apply_own_hostname`]).
///
/// Refuses plain `ws://` on a non-loopback listener unless `config.insecure_plaintext`.
/// Binds `config.metrics_listen` if set, and serves the metrics there until it returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    mut config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    config.apply_own_hostname()?;
    let metrics = bind_metrics(&config).await?;
    server::run(listener, metrics, config, shutdown).await
}

async fn bind_metrics(config: &Config) -> Result<Option<tokio::net::TcpListener>, ServerError> {
    let Some(addr) = config.metrics_listen else {
        return Ok(None);
    };
    tokio::net::TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| ServerError::MetricsListen { addr, source })
}

/// A relay running in-process on a loopback port; dropping it shuts it down (without waiting).
pub struct RunningServer {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    routing_id: RoutingId,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServerError>>>,
}

impl RunningServer {
    /// Binds `127.0.0.1:0` (ignoring `config.listen`; `config.metrics_listen`, if set, is
    /// bound as given, so `127.0.0.1:0` there picks a free port) and runs [`run`] on a
    /// spawned task.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(ServerError::io("binding 127.0.0.1:0"))?;
        Self::start_on(listener, config).await
    }

    /// Runs [`run`] on a spawned task with an already bound listener.
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        mut config: Config,
    ) -> Result<Self, ServerError> {
        config.validate()?;
        config.apply_own_hostname()?;
        if let Some(tls) = &config.tls {
            // Fail here, not inside the task, on unreadable PEM files.
            tls::acceptor(&tls.cert, &tls.key)?;
        }
        let addr = listener
            .local_addr()
            .map_err(ServerError::io("reading the listener address"))?;
        let metrics = bind_metrics(&config).await?;
        let metrics_addr = metrics
            .as_ref()
            .map(tokio::net::TcpListener::local_addr)
            .transpose()
            .map_err(ServerError::io("reading the metrics listener address"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let routing_id = config.routing_id;
        let tls = config.tls.is_some();
        let task = tokio::spawn(server::run(listener, metrics, config, async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            metrics_addr,
            routing_id,
            tls,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the metrics listener is bound, if `config.metrics_listen` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The routing ID it announces.
    pub fn routing_id(&self) -> RoutingId {
        self.routing_id
    }

    /// `ws://127.0.0.1:<port>`, or `wss://localhost:<port>` with TLS (no trailing slash).
    pub fn ws_url(&self) -> String {
        if self.tls {
            format!("wss://localhost:{}", self.addr.port())
        } else {
            format!("ws://{}", self.addr)
        }
    }

    /// Graceful shutdown; returns when the server has stopped.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|e| Err(ServerError::Misuse(e.to_string()))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// [`RunningServer::start`]: a relay on `127.0.0.1:0` in-process.
pub async fn spawn_for_testing(config: Config) -> Result<RunningServer, ServerError> {
    RunningServer::start(config).await
}

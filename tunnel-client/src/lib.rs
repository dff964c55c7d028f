//! The client side of a tunnel relay's wire interface (docs/PROTOCOL.md#tunnel-paths), shared by
//! the desktop (`bridge`) and the phone (`phone-sim`): where each endpoint lives ([`Route`],
//! [`TunnelConfig::url`]), how to get there (TCP with `TCP_NODELAY`, `--connect-to` host
//! overrides, rustls with the platform's roots plus an optional extra CA, the `fido.cable`
//! subprotocol, a 1 MiB message cap), and what the relay said when it refused or ended a
//! connection, as one typed [`RelayError`] that names who closed and why. It knows nothing
//! of Noise or CTAP: an open [`Tunnel`] moves binary messages.
//!
//! ```no_run
//! # async fn f() -> Result<(), tunnel_client::RelayError> {
//! use hybrid_protocol::tunnel::{RoutingId, TunnelId, TunnelPath};
//! use tunnel_client::{Route, TunnelConfig};
//! let config = TunnelConfig { tunnel_override: Some("ws://127.0.0.1:8080".into()), ..Default::default() };
//! let route = Route::Tunnel(TunnelPath::Connect(RoutingId([1, 2, 3]), TunnelId([0; 16])));
//! let mut tunnel = config.open("cable.ua5v.com", &route, &[]).await?;
//! tunnel.send(b"noise message 1".to_vec()).await?;
//! match tunnel.recv().await? {
//!     Some(reply) => println!("{} bytes", reply.len()),
//!     None => println!("the other side ended the tunnel"),
//! }
//! tunnel.close().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `config`: [`TunnelConfig`], the settings (override, `--connect-to`, extra CA) and their
//!   check before a QR code shows.
//! - `routes`: endpoints ([`Route`]), the settings that move them ([`check_base_url`],
//!   [`parse_connect_to`]) and the one upgrade request both [`TunnelConfig::open`] and
//!   [`TunnelConfig::probe`] send.
//! - `tls`: the client TLS configuration, built once per [`TunnelConfig`].
//! - `tunnel`: [`TunnelConfig::open`] and the open [`Tunnel`].
//! - `probe`: [`TunnelConfig::probe`], a timed step-by-step check for `doctor`.
//! - `error`: [`RelayError`], what close codes and HTTP statuses mean, and URLs as messages
//!   show them ([`shown`]).
//! - `retry`: [`Backoff`], how long to wait before trying a busy relay again.
//! - `cli` (feature `cli`): [`RelayArgs`], the relay flags every command line shares.

#[cfg(feature = "cli")]
mod cli;
mod config;
mod error;
mod probe;
mod retry;
mod routes;
mod tls;
mod tunnel;

#[cfg(feature = "cli")]
pub use cli::RelayArgs;
pub use config::TunnelConfig;
pub use error::{close_meaning, shown, status_meaning, RelayError};
pub use probe::{ProbeReport, ProbeStep, StepOutcome, StepReport};
pub use retry::{jitter, Backoff};
pub use routes::{check_base_url, parse_connect_to, Route};
pub use tls::TlsCache;
pub use tunnel::{Tunnel, CLOSE_WAIT};

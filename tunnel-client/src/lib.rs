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

#[cfg(feature = "cli")]
mod cli;
mod probe;

#[cfg(feature = "cli")]
pub use cli::RelayArgs;
pub use probe::{ProbeReport, ProbeStep, StepOutcome, StepReport};

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::session::MAX_MESSAGE;
use hybrid_protocol::tunnel::{ContactId, TunnelPath, SUBPROTOCOL};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, error::ProtocolError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long [`Tunnel::close`] waits for the relay to finish the close handshake.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A relay endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/cable/new`, `/cable/connect` or `/cable/contact`
    /// (docs/PROTOCOL.md#tunnel-paths, #contact).
    Tunnel(TunnelPath),
    /// The phone's registration socket on this project's relay: `/cable/register` mints a
    /// contact ID, `/cable/register/<contact id>` resumes it (tunnel-server/README.md).
    Register(Option<ContactId>),
}

impl Route {
    /// The request path.
    pub fn path(&self) -> String {
        match self {
            Self::Tunnel(p) => p.to_path(),
            Self::Register(None) => "/cable/register".into(),
            Self::Register(Some(id)) => format!("/cable/register/{}", id.to_base64url()),
        }
    }
}

/// How to reach tunnel relays. Cloning shares the TLS configuration once built.
#[derive(Clone, Debug, Default)]
pub struct TunnelConfig {
    /// Replaces scheme and host of every relay URL, e.g. `ws://127.0.0.1:8080`.
    pub tunnel_override: Option<String>,
    /// `(domain, host:port)`: connect to `host:port` for `domain`, keeping the TLS name and
    /// the `Host` header (like curl's `--connect-to`).
    pub connect_to: Vec<(String, String)>,
    /// A PEM file of extra trusted CA certificates.
    pub extra_ca: Option<PathBuf>,
    /// The TLS configuration once built (leave it `Default::default()`).
    pub tls_cache: TlsCache,
}

/// Where a [`TunnelConfig`] keeps its TLS configuration once built; clones share it.
#[derive(Clone, Debug, Default)]
pub struct TlsCache(Arc<OnceLock<Arc<rustls::ClientConfig>>>);

impl TunnelConfig {
    /// A configuration with these settings.
    pub fn new(
        tunnel_override: Option<String>,
        connect_to: Vec<(String, String)>,
        extra_ca: Option<PathBuf>,
    ) -> Self {
        Self {
            tunnel_override,
            connect_to,
            extra_ca,
            tls_cache: TlsCache::default(),
        }
    }

    /// Checks every setting without connecting: the override URL's form and the extra CA
    /// file (read and parsed). Call it before showing a QR code, so a typo cannot waste a
    /// person's scan.
    pub fn check(&self) -> Result<(), RelayError> {
        if let Some(base) = &self.tunnel_override {
            check_base_url(base)?;
        }
        self.tls().map(|_| ())
    }

    /// The base URL (`wss://host` or the override) for `domain`.
    pub fn base_url(&self, domain: &str) -> String {
        match &self.tunnel_override {
            Some(base) => base.trim_end_matches('/').to_string(),
            None => format!("wss://{domain}"),
        }
    }

    /// The URL of `route` on `domain`, after the override.
    pub fn url(&self, domain: &str, route: &Route) -> String {
        format!("{}{}", self.base_url(domain), route.path())
    }

    /// The TLS client configuration: platform roots plus the extra CA, built once.
    pub fn tls(&self) -> Result<Arc<rustls::ClientConfig>, RelayError> {
        if let Some(c) = self.tls_cache.0.get() {
            return Ok(c.clone());
        }
        let built = build_tls(self.extra_ca.as_deref())?;
        Ok(self.tls_cache.0.get_or_init(|| built).clone())
    }

    /// Opens `route` on the relay for `domain` with extra request headers. Refusals, TLS
    /// failures and a missing `fido.cable` subprotocol are [`RelayError`]s.
    pub async fn open(
        &self,
        domain: &str,
        route: &Route,
        headers: &[(&str, String)],
    ) -> Result<Tunnel, RelayError> {
        let url = self.url(domain, route);
        let target = Target::parse(&url)?;
        let unreachable = |reason: String| RelayError::Unreachable {
            url: url.clone(),
            reason,
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| RelayError::BadUrl {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let h = request.headers_mut();
        h.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        for (k, v) in headers {
            let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) else {
                return Err(RelayError::BadUrl {
                    url: url.clone(),
                    reason: format!("request header {k} cannot be sent"),
                });
            };
            h.insert(k, v);
        }
        let addr = self
            .connect_to
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(&target.host))
            .map_or_else(|| target.authority.clone(), |(_, t)| t.clone());
        let connector = if target.tls {
            tokio_tungstenite::Connector::Rustls(self.tls()?)
        } else {
            tokio_tungstenite::Connector::Plain
        };
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| unreachable(format!("TCP connection to {addr} failed: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let (ws, response) = tokio_tungstenite::client_async_tls_with_config(
            request,
            tcp,
            Some(ws_config()),
            Some(connector),
        )
        .await
        .map_err(|e| match e {
            tungstenite::Error::Http(r) => RelayError::Refused {
                url: url.clone(),
                status: r.status().as_u16(),
                said: relay_said(r.status(), r.body().as_deref()),
            },
            tungstenite::Error::Tls(e) => unreachable(format!(
                "TLS failed: {e}; for a relay with a private CA pass --extra-ca FILE"
            )),
            tungstenite::Error::Io(e) => unreachable(e.to_string()),
            tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(_)) => {
                RelayError::NotARelay { url: url.clone() }
            }
            e => RelayError::Protocol {
                url: url.clone(),
                reason: format!("the WebSocket upgrade failed: {e}"),
            },
        })?;
        let (parts, _) = response.into_parts();
        if parts
            .headers
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            != Some(SUBPROTOCOL)
        {
            return Err(RelayError::NotARelay { url });
        }
        tracing::debug!(%url, "relay connection open");
        Ok(Tunnel {
            ws,
            headers: parts.headers,
            url,
        })
    }
}

/// Scheme, host and `host:port` of a relay URL.
struct Target {
    tls: bool,
    host: String,
    authority: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, RelayError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(RelayError::BadUrl {
                url: url.into(),
                reason: "a relay URL starts with ws:// or wss://".into(),
            });
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err(RelayError::BadUrl {
                url: url.into(),
                reason: "it names no host".into(),
            });
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => (h, Some(p)),
            _ => (authority, None),
        };
        let authority = match port {
            Some(_) => authority.to_string(),
            None => format!("{authority}:{}", if tls { 443 } else { 80 }),
        };
        Ok(Self {
            tls,
            host: host.to_string(),
            authority,
        })
    }
}

/// Checks an override base URL: `ws://` or `wss://`, a host, and no path.
pub fn check_base_url(base: &str) -> Result<(), RelayError> {
    Target::parse(base)?;
    let rest = base.split_once("://").map_or("", |(_, r)| r);
    if rest.trim_end_matches('/').contains(['/', '?', '#']) {
        return Err(RelayError::BadUrl {
            url: base.into(),
            reason: "give only the scheme and host, e.g. ws://127.0.0.1:8080 (the path is added per request)".into(),
        });
    }
    Ok(())
}

/// Parses `DOMAIN=HOST:PORT` (a `--connect-to` value).
pub fn parse_connect_to(s: &str) -> Result<(String, String), String> {
    let (d, t) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not DOMAIN=HOST:PORT"))?;
    if d.is_empty() || !t.contains(':') {
        return Err(format!("{s:?} is not DOMAIN=HOST:PORT"));
    }
    Ok((d.to_string(), t.to_string()))
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig {
        max_message_size: Some(MAX_MESSAGE),
        max_frame_size: Some(MAX_MESSAGE),
        ..Default::default()
    }
}

fn build_tls(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, RelayError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("platform root certificates: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "platform root certificates loaded");
    if let Some(path) = extra_ca {
        let bad = |reason: String| RelayError::ExtraCa {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("bad PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("unusable certificate: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(bad("it holds no PEM certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An open relay connection: binary messages in and out.
#[derive(Debug)]
pub struct Tunnel {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    headers: HeaderMap,
    url: String,
}

impl Tunnel {
    /// The URL connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The single value of header `name` in the relay's 101 response: `Ok(None)` when
    /// absent, an error when repeated or not ASCII.
    pub fn header(&self, name: &str) -> Result<Option<&str>, RelayError> {
        let mut values = self.headers.get_all(name).iter();
        let Some(v) = values.next() else {
            return Ok(None);
        };
        let bad = |reason: String| RelayError::Protocol {
            url: self.url.clone(),
            reason,
        };
        if values.next().is_some() {
            return Err(bad(format!("its 101 response repeats the {name} header")));
        }
        v.to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| bad(format!("its {name} header is not ASCII")))
    }

    /// Like [`Tunnel::header`], but a missing header is an error too.
    pub fn required_header(&self, name: &str) -> Result<&str, RelayError> {
        self.header(name)?.ok_or_else(|| RelayError::Protocol {
            url: self.url.clone(),
            reason: format!("its 101 response has no {name} header"),
        })
    }

    /// Sends one protocol message as one binary WebSocket message.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), RelayError> {
        self.ws
            .send(Message::Binary(bytes))
            .await
            .map_err(|e| self.read_error(e))
    }

    /// The next binary message; `Ok(None)` when the other side ended the tunnel (a normal
    /// close, an application close code forwarded by the relay, or a close without a
    /// code). A close the relay made on its own (limits, shutdown, errors) is
    /// [`RelayError::ClosedByRelay`]; a connection lost without a close is
    /// [`RelayError::Dropped`]. Pings are answered; text messages are an error.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, RelayError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
                Some(Ok(Message::Close(frame))) => {
                    let Some(frame) = frame else { return Ok(None) };
                    let code = u16::from(frame.code);
                    if matches!(code, 1000 | 3000..=4999) {
                        return Ok(None);
                    }
                    return Err(RelayError::ClosedByRelay {
                        code,
                        reason: frame.reason.chars().take(123).collect(),
                    });
                }
                Some(Ok(Message::Text(_))) => {
                    return Err(RelayError::Protocol {
                        url: self.url.clone(),
                        reason: "a text WebSocket message arrived; hybrid tunnels carry only binary messages".into(),
                    })
                }
                Some(Ok(_)) => continue,
                None => {
                    return Err(RelayError::Dropped {
                        reason: "the connection ended without a close".into(),
                    })
                }
                Some(Err(e)) => return Err(self.read_error(e)),
            }
        }
    }

    fn read_error(&self, e: tungstenite::Error) -> RelayError {
        match e {
            tungstenite::Error::Capacity(e) => RelayError::Protocol {
                url: self.url.clone(),
                reason: format!(
                    "a message over the {} KiB limit arrived ({e})",
                    MAX_MESSAGE / 1024
                ),
            },
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                RelayError::Dropped {
                    reason: "the connection is already closed".into(),
                }
            }
            tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                RelayError::Dropped {
                    reason: "the connection was reset without a close".into(),
                }
            }
            tungstenite::Error::Io(e) => RelayError::Dropped {
                reason: e.to_string(),
            },
            e => RelayError::Protocol {
                url: self.url.clone(),
                reason: e.to_string(),
            },
        }
    }

    /// Closes with 1000 and waits (at most [`CLOSE_WAIT`]) until the relay has finished
    /// the close handshake, discarding anything still in flight. Errors are ignored: the
    /// tunnel is done either way.
    pub async fn close(&mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// `url` for messages and logs: each ID in a `/cable/…` path (tunnel ID, contact ID) cut to
/// its first 8 characters, as the IDs' `Debug` forms do. The full tunnel ID lets anyone race
/// the desktop for the tunnel, the full contact ID lets anyone take the phone's wake-ups; the
/// error's `url` field keeps the whole URL.
pub fn shown(url: &str) -> String {
    let Some(at) = url.find("/cable/") else {
        return url.to_string();
    };
    let (base, path) = url.split_at(at);
    let mut out = base.to_string();
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        // "", "cable", the route's name, then its IDs (a 6-hex-digit routing ID stays whole).
        if i > 2 && seg.chars().count() > 8 {
            out.extend(seg.chars().take(8));
            out.push('…');
        } else {
            out.push_str(seg);
        }
    }
    out
}

/// What went wrong talking to a relay, and whose doing it was.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A relay URL or request header we were given is unusable (our caller's input).
    #[error("bad relay address {:?}: {reason}", shown(.url))]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The extra CA file cannot be used.
    #[error("the extra CA file {}: {reason}", .path.display())]
    ExtraCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The local TLS setup failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// DNS, TCP or TLS to the relay failed.
    #[error("cannot reach the tunnel relay at {}: {reason}", shown(.url))]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The relay answered the WebSocket upgrade with an HTTP error status.
    #[error("the tunnel relay refused {} with HTTP {status}: {}{}", shown(.url), status_meaning(*.status), .said.as_ref().map(|s| format!("; it said: {s}")).unwrap_or_default())]
    Refused {
        /// The URL tried.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The relay's own explanation (its response body, control characters escaped and
        /// cut short), when it gave more than the status's standard phrase.
        said: Option<String>,
    },
    /// The server did not select the `fido.cable` subprotocol.
    #[error("{} did not select the fido.cable subprotocol; is it a caBLE tunnel relay?", shown(.url))]
    NotARelay {
        /// The URL tried.
        url: String,
    },
    /// The relay broke the WebSocket or hybrid rules (text frame, oversized message, a
    /// missing or bad response header).
    #[error("the tunnel relay at {} misbehaved: {reason}", shown(.url))]
    Protocol {
        /// The URL.
        url: String,
        /// What it did.
        reason: String,
    },
    /// The relay closed the tunnel on its own, with a WebSocket close code.
    #[error("the relay closed the tunnel: {} ({code}){}", close_meaning(*.code), if .reason.is_empty() { String::new() } else { format!(", saying {:?}", .reason) })]
    ClosedByRelay {
        /// The close code (RFC 6455 §7.4).
        code: u16,
        /// The close reason the relay sent.
        reason: String,
    },
    /// The connection was lost without a WebSocket close.
    #[error("the connection to the tunnel relay was lost: {reason}")]
    Dropped {
        /// What happened.
        reason: String,
    },
}

impl RelayError {
    /// Whether the caller's own settings are at fault (a usage error, not the relay's).
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            Self::BadUrl { .. } | Self::ExtraCa { .. } | Self::Tls(_)
        )
    }

    /// The HTTP status of a refused upgrade.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Longest explanation kept from a refusing relay's response body, in characters.
const MAX_SAID: usize = 300;

/// The relay's explanation of a refusal: its body's text, trimmed, control characters escaped
/// and cut to [`MAX_SAID`]; `None` when it is empty or only the status's standard phrase.
fn relay_said(status: tungstenite::http::StatusCode, body: Option<&[u8]>) -> Option<String> {
    let text = String::from_utf8_lossy(body?);
    let text = text.trim();
    let standard = status.canonical_reason().unwrap_or("");
    if text.is_empty() || text.eq_ignore_ascii_case(standard) {
        return None;
    }
    let mut said = hybrid_protocol::text::escape_controls(text).replace('\n', " ");
    if said.chars().count() > MAX_SAID {
        said = said.chars().take(MAX_SAID).collect::<String>() + "…";
    }
    Some(said)
}

/// What a WebSocket close code from a relay means (RFC 6455 §7.4.1, RFC 9110 for 1013).
pub fn close_meaning(code: u16) -> &'static str {
    match code {
        1001 => "going away",
        1002 => "WebSocket protocol error",
        1003 => "unsupported data (tunnels carry binary messages only)",
        1006 => "connection lost",
        1007 => "invalid message data",
        1008 => "policy violation (too many messages, idle for too long, or the tunnel's lifetime is over)",
        1009 => "message too big",
        1011 => "the relay hit an internal error",
        1012 => "the relay is restarting",
        1013 => "the relay is overloaded; try again later",
        _ => "closed",
    }
}

/// What an HTTP status from a tunnel relay means for the person waiting.
pub fn status_meaning(status: u16) -> &'static str {
    match status {
        400 => "the relay rejected the request as malformed (is it a caBLE tunnel server?)",
        401 | 403 => "the relay does not allow this client; check the relay address and its access settings",
        404 => "the relay does not know this tunnel; the other side's session may have ended, start again with a new QR code",
        405 => "the relay does not accept this request method; is this a caBLE tunnel server?",
        408 => "the relay timed out waiting; try again",
        409 => "the tunnel is already in use; start again with a new QR code",
        410 => "the contact ID is no longer valid; link the phone again with a QR code",
        426 => "the relay requires a WebSocket upgrade it did not get; check the relay address",
        429 => "the relay is rate-limiting this client; wait a minute and try again",
        503 => "the relay is full or shutting down; try again later",
        500..=599 => "the relay has a server-side problem; try again later",
        _ => "unexpected answer from the relay",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cut_ids_in_urls_to_a_prefix() {
        let tunnel = "B2392008F851D909E1DD0984019DA00B";
        let contact = "p6enp6enp6enp6enp6enp6enp6enp6en";
        for (url, want) in [
            (
                format!("wss://r.example/cable/new/{tunnel}"),
                "wss://r.example/cable/new/B2392008…",
            ),
            (
                format!("ws://127.0.0.1:9/cable/connect/010203/{tunnel}"),
                "ws://127.0.0.1:9/cable/connect/010203/B2392008…",
            ),
            (
                format!("wss://r.example/cable/contact/{contact}"),
                "wss://r.example/cable/contact/p6enp6en…",
            ),
            (
                format!("wss://r.example/cable/register/{contact}"),
                "wss://r.example/cable/register/p6enp6en…",
            ),
            (
                "wss://r.example/cable/register".to_string(),
                "wss://r.example/cable/register",
            ),
            ("ws://127.0.0.1:8080".to_string(), "ws://127.0.0.1:8080"),
        ] {
            assert_eq!(shown(&url), want);
            let e = RelayError::Refused {
                url: url.clone(),
                status: 410,
                said: None,
            }
            .to_string();
            assert!(!e.contains(tunnel) && !e.contains(contact), "{e}");
            let e = RelayError::Unreachable {
                url,
                reason: "refused".into(),
            }
            .to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn a_refusal_carries_what_the_relay_said_escaped_and_short() {
        let forbidden = tungstenite::http::StatusCode::FORBIDDEN;
        assert_eq!(relay_said(forbidden, None), None);
        assert_eq!(relay_said(forbidden, Some(b"Forbidden")), None);
        assert_eq!(relay_said(forbidden, Some(b" \n")), None);
        let said = relay_said(forbidden, Some(b"only the phone may resume\n\x1b]0;x\x07")).unwrap();
        assert_eq!(said, "only the phone may resume \\u{1b}]0;x\\u{7}");
        let long = relay_said(forbidden, Some("é".repeat(1000).as_bytes())).unwrap();
        assert_eq!(long.chars().count(), MAX_SAID + 1);
        let e = RelayError::Refused {
            url: "ws://127.0.0.1:9/cable/register".into(),
            status: 403,
            said: Some("phones do not send Origin".into()),
        }
        .to_string();
        assert!(e.ends_with("; it said: phones do not send Origin"), "{e}");
    }

    #[test]
    fn urls_and_overrides() {
        let c = TunnelConfig::new(Some("ws://127.0.0.1:9/".into()), vec![], None);
        let r = Route::Register(None);
        assert_eq!(c.url("x.example", &r), "ws://127.0.0.1:9/cable/register");
        let c = TunnelConfig::default();
        assert_eq!(c.url("x.example", &r), "wss://x.example/cable/register");
        let t = Target::parse("wss://relay.example/cable/new/00").unwrap();
        assert_eq!((t.tls, t.host.as_str()), (true, "relay.example"));
        assert_eq!(t.authority, "relay.example:443");
        let t = Target::parse("ws://[::1]:8080/x").unwrap();
        assert_eq!(
            (t.host.as_str(), t.authority.as_str()),
            ("[::1]", "[::1]:8080")
        );
        for bad in ["http://x", "ws://", "relay.example"] {
            assert!(
                matches!(Target::parse(bad), Err(RelayError::BadUrl { .. })),
                "{bad}"
            );
        }
        assert!(check_base_url("ws://127.0.0.1:8080").is_ok());
        assert!(check_base_url("ws://127.0.0.1:8080/").is_ok());
        assert!(check_base_url("ws://127.0.0.1:8080/cable/new").is_err());
        assert!(parse_connect_to("a.example=127.0.0.1:1").is_ok());
        assert!(parse_connect_to("a.example").is_err());
    }

    #[test]
    fn extra_ca_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let c = TunnelConfig::new(None, vec![], Some(missing.clone()));
        let e = c.check().unwrap_err();
        assert!(
            matches!(e, RelayError::ExtraCa { .. }) && e.is_local(),
            "{e}"
        );
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TunnelConfig::new(None, vec![], Some(empty))
            .check()
            .unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn close_messages_say_what_the_relay_said() {
        let e = RelayError::ClosedByRelay {
            code: 1009,
            reason: "message too big".into(),
        };
        assert_eq!(
            e.to_string(),
            "the relay closed the tunnel: message too big (1009), saying \"message too big\""
        );
    }
}

//! The relay connection (HYBRID.md §5): URLs for `/cable/connect` and `/cable/contact`, the
//! overrides for self-hosted relays, TCP with `TCP_NODELAY`, rustls with the platform's roots
//! plus an optional extra CA, the `fido.cable` subprotocol, and HTTP statuses mapped to
//! [`BridgeError::RelayRefused`].

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::session::MAX_MESSAGE;
use hybrid_protocol::tunnel::{TunnelPath, SIGNAL_CONNECTION_HEADER, SUBPROTOCOL};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::BridgeError;

/// How to reach tunnel relays.
#[derive(Clone, Debug, Default)]
pub struct TunnelConfig {
    /// Replaces scheme and host of every relay URL, e.g. `ws://127.0.0.1:8080`.
    pub tunnel_override: Option<String>,
    /// `(domain, host:port)`: connect to `host:port` for `domain`, keeping TLS name and Host.
    pub connect_to: Vec<(String, String)>,
    /// A PEM file of extra trusted CA certificates.
    pub extra_ca: Option<PathBuf>,
}

/// An open tunnel: binary messages in, binary messages out.
#[derive(Debug)]
pub struct Tunnel {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Whether the relay echoed `X-caBLE-Signal-Connection: true`.
    pub signal_connection: bool,
    /// The URL connected to (for messages).
    pub url: String,
}

impl Tunnel {
    /// Sends one protocol message as one binary WebSocket message.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), BridgeError> {
        self.ws
            .send(WsMessage::Binary(bytes))
            .await
            .map_err(|e| match e {
                tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                    BridgeError::Closed {
                        during: "while sending",
                    }
                }
                e => BridgeError::RelayProtocol(format!("sending: {e}")),
            })
    }

    /// The next binary message; `Ok(None)` when the peer closed. Text frames are an error;
    /// pings are answered by tungstenite.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, BridgeError> {
        loop {
            match self.ws.next().await {
                None => return Ok(None),
                Some(Ok(WsMessage::Binary(b))) => return Ok(Some(b)),
                Some(Ok(WsMessage::Close(_))) => return Ok(None),
                Some(Ok(WsMessage::Text(_))) => return Err(BridgeError::RelayProtocol(
                    "a text WebSocket message arrived; caBLE tunnels carry only binary messages"
                        .into(),
                )),
                Some(Ok(_)) => continue,
                Some(Err(tungstenite::Error::Capacity(e))) => {
                    return Err(BridgeError::RelayProtocol(format!(
                        "incoming message over the 1 MiB limit: {e}"
                    )))
                }
                Some(Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ),
                )) => return Ok(None),
                Some(Err(tungstenite::Error::Io(e))) => {
                    tracing::debug!("tunnel read error: {e}");
                    return Ok(None);
                }
                Some(Err(e)) => return Err(BridgeError::RelayProtocol(format!("reading: {e}"))),
            }
        }
    }

    /// Closes politely (errors ignored).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

impl TunnelConfig {
    /// The URL for `path` on `domain`, after `--tunnel-override`.
    pub fn url(&self, domain: &str, path: &TunnelPath) -> String {
        match &self.tunnel_override {
            Some(base) => format!("{}{}", base.trim_end_matches('/'), path.to_path()),
            None => path.to_url(domain),
        }
    }

    /// Opens `path` on the relay for `domain` with the extra request headers.
    pub async fn open(
        &self,
        domain: &str,
        path: &TunnelPath,
        headers: &[(&str, String)],
    ) -> Result<Tunnel, BridgeError> {
        let url = self.url(domain, path);
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(BridgeError::Usage(format!(
                "tunnel URL {url:?} must start with ws:// or wss://"
            )));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
            _ => authority,
        };
        let default_port = if tls { 443 } else { 80 };
        let target = self
            .connect_to
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(host))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| {
                if authority.contains(':') {
                    authority.to_string()
                } else {
                    format!("{authority}:{default_port}")
                }
            });
        let unreachable = |reason: String| BridgeError::RelayUnreachable {
            url: url.clone(),
            reason,
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| BridgeError::Usage(format!("bad tunnel URL {url:?}: {e}")))?;
        let h = request.headers_mut();
        h.insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        if let Ok(v) =
            HeaderValue::from_str(&format!("{}://{authority}", if tls { "wss" } else { "ws" }))
        {
            h.insert("Origin", v);
        }
        for (k, v) in headers {
            let v = HeaderValue::from_str(v)
                .map_err(|_| BridgeError::Internal(format!("bad header value for {k}")))?;
            let k = tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| BridgeError::Internal(format!("bad header name {k}")))?;
            h.insert(k, v);
        }
        let tcp = TcpStream::connect(&target)
            .await
            .map_err(|e| unreachable(format!("TCP connection to {target} failed: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let connector = if tls {
            Some(tokio_tungstenite::Connector::Rustls(self.tls_config()?))
        } else {
            Some(tokio_tungstenite::Connector::Plain)
        };
        let config = WebSocketConfig {
            max_message_size: Some(MAX_MESSAGE),
            max_frame_size: Some(MAX_MESSAGE),
            ..Default::default()
        };
        let (ws, response) =
            tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(config), connector)
                .await
                .map_err(|e| match e {
                    tungstenite::Error::Http(r) => BridgeError::RelayRefused {
                        url: url.clone(),
                        status: r.status().as_u16(),
                    },
                    tungstenite::Error::Tls(e) => unreachable(format!(
                        "TLS failed: {e}; for a relay with a private CA pass --extra-ca FILE"
                    )),
                    tungstenite::Error::Io(e) => unreachable(e.to_string()),
                    tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
                    ) => BridgeError::RelayProtocol(format!(
                        "the relay at {url} did not select the {SUBPROTOCOL} subprotocol; is it a caBLE tunnel server?"
                    )),
                    e => BridgeError::RelayProtocol(format!("WebSocket upgrade failed: {e}")),
                })?;
        let selected = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok());
        if selected != Some(SUBPROTOCOL) {
            return Err(BridgeError::RelayProtocol(format!(
                "the relay at {url} did not select the {SUBPROTOCOL} subprotocol (got {selected:?}); is it a caBLE tunnel server?"
            )));
        }
        let signal_connection = response
            .headers()
            .get(SIGNAL_CONNECTION_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        tracing::debug!(%url, signal_connection, "tunnel open");
        Ok(Tunnel {
            ws,
            signal_connection,
            url,
        })
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, BridgeError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("platform root certificates: {e}");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "platform root certificates loaded");
        if let Some(path) = &self.extra_ca {
            let pem = std::fs::read(path)
                .map_err(|e| BridgeError::file("reading the extra CA file", path, e))?;
            let mut n = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert =
                    cert.map_err(|e| BridgeError::file("parsing the extra CA file", path, e))?;
                roots.add(cert).map_err(|e| {
                    BridgeError::Usage(format!("extra CA in {}: {e}", path.display()))
                })?;
                n += 1;
            }
            if n == 0 {
                return Err(BridgeError::Usage(format!(
                    "the extra CA file {} holds no PEM certificate",
                    path.display()
                )));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BridgeError::Internal(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// Parses `DOMAIN=HOST:PORT`.
pub fn parse_connect_to(s: &str) -> Result<(String, String), String> {
    let (d, t) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not DOMAIN=HOST:PORT"))?;
    if d.is_empty() || !t.contains(':') {
        return Err(format!("{s:?} is not DOMAIN=HOST:PORT"));
    }
    Ok((d.to_string(), t.to_string()))
}

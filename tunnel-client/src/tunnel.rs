//! An open relay connection ([`Tunnel`]): [`TunnelConfig::open`] connects (TCP with
//! `TCP_NODELAY`, TLS for `wss://`, the WebSocket upgrade `routes` builds, with a 1 MiB message
//! cap) and checks the relay chose `fido.cable`; then binary messages go in and out, and how the
//! relay or the peer ended the tunnel becomes `Ok(None)` or a [`RelayError`] that says who.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::session::MAX_MESSAGE;
use hybrid_protocol::tunnel::SUBPROTOCOL;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::HeaderMap;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, error::ProtocolError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::TunnelConfig;
use crate::error::{relay_said, retry_after, RelayError};
use crate::routes::{Route, Upgrade};

/// How long [`Tunnel::close`] waits for the relay to finish the close handshake.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The WebSocket limits of every relay connection: one protocol message fits one WebSocket
/// message of at most [`MAX_MESSAGE`] bytes.
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig {
        max_message_size: Some(MAX_MESSAGE),
        max_frame_size: Some(MAX_MESSAGE),
        ..Default::default()
    }
}

impl TunnelConfig {
    /// Opens `route` on the relay for `domain` with extra request headers. Refusals, TLS
    /// failures and a missing `fido.cable` subprotocol are [`RelayError`]s.
    pub async fn open(
        &self,
        domain: &str,
        route: &Route,
        headers: &[(&str, String)],
    ) -> Result<Tunnel, RelayError> {
        let Upgrade {
            url,
            addr,
            tls,
            request,
            ..
        } = self.upgrade(domain, route, headers)?;
        let unreachable = |reason: String| RelayError::Unreachable {
            url: url.clone(),
            reason,
        };
        let connector = match tls {
            Some(config) => tokio_tungstenite::Connector::Rustls(config),
            None => tokio_tungstenite::Connector::Plain,
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
                retry_after: retry_after(r.headers()),
            },
            tungstenite::Error::Tls(e) => unreachable(format!(
                "TLS failed: {e}; for a relay with a private CA pass --extra-ca FILE"
            )),
            tungstenite::Error::Io(e) => unreachable(e.to_string()),
            tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(_)) => {
                RelayError::NotARelay { url: url.clone() }
            }
            // The end of the stream before the answer: the relay (or its process) went away,
            // which says nothing about how it speaks.
            tungstenite::Error::Protocol(ProtocolError::HandshakeIncomplete) => {
                RelayError::Dropped {
                    reason: "the relay closed the connection before answering the WebSocket \
                             upgrade; if it is restarting, try again in a moment"
                        .into(),
                }
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

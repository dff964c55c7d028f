//! WebSocket connections to the tunnel relay (HYBRID.md §5.2): `wss://` with the system roots
//! plus an optional extra CA, or plain `ws://` for a local relay override; `TCP_NODELAY`; the
//! `fido.cable` subprotocol; and the response headers the phone needs.

use std::path::Path;
use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::tunnel::SUBPROTOCOL;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Response};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::PhoneError;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// TLS trust: system roots plus an optional extra CA PEM file.
pub(crate) fn tls_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, PhoneError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if let Some(path) = extra_ca {
        let pem =
            std::fs::read(path).map_err(PhoneError::file("cannot read the extra CA file", path))?;
        let mut n = 0;
        for c in rustls_pemfile::certs(&mut pem.as_slice()) {
            let c = c.map_err(|e| PhoneError::Tls(format!("{}: bad PEM ({e})", path.display())))?;
            roots.add(c).map_err(|e| {
                PhoneError::Tls(format!("{}: unusable certificate ({e})", path.display()))
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(PhoneError::Tls(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PhoneError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Opens `url` with the `fido.cable` subprotocol; returns the socket and the 101 response.
/// A 410 is [`PhoneError::ContactGone`]; other refusals are [`PhoneError::RelayRefused`].
pub(crate) async fn connect(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(Ws, Response<Option<Vec<u8>>>), PhoneError> {
    let refused = |reason: String| PhoneError::RelayRefused {
        url: url.to_string(),
        reason,
    };
    let mut req = url
        .into_client_request()
        .map_err(|e| PhoneError::Config(format!("bad relay URL {url:?}: {e}")))?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let connector = Connector::Rustls(tls.clone());
    let result =
        tokio_tungstenite::connect_async_tls_with_config(req, None, true, Some(connector)).await;
    let (ws, resp) = match result {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(resp)) => {
            if resp.status().as_u16() == 410 {
                return Err(PhoneError::ContactGone);
            }
            return Err(refused(format!(
                "HTTP {} instead of a WebSocket upgrade{}",
                resp.status(),
                match resp.status().as_u16() {
                    404 => " (no such tunnel)",
                    409 => " (this tunnel ID is already in use; scan a fresh QR code)",
                    400 => " (is it a caBLE tunnel relay?)",
                    _ => "",
                }
            )));
        }
        Err(e) => {
            return Err(refused(format!(
                "{e}; is the relay running and the URL right?"
            )))
        }
    };
    let proto = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if proto != Some(SUBPROTOCOL) {
        return Err(refused(format!(
            "it did not select the {SUBPROTOCOL:?} subprotocol (got {proto:?})"
        )));
    }
    Ok((ws, resp))
}

/// The single value of response header `name`, or an error naming it.
pub(crate) fn header<'a>(
    resp: &'a Response<Option<Vec<u8>>>,
    name: &str,
    url: &str,
) -> Result<&'a str, PhoneError> {
    let mut values = resp.headers().get_all(name).iter();
    let refused = |reason: String| PhoneError::RelayRefused {
        url: url.to_string(),
        reason,
    };
    let v = values
        .next()
        .ok_or_else(|| refused(format!("the 101 response has no {name} header")))?;
    if values.next().is_some() {
        return Err(refused(format!(
            "the 101 response has more than one {name} header"
        )));
    }
    v.to_str()
        .map_err(|_| refused(format!("the {name} header is not ASCII")))
}

/// What came from the socket.
pub(crate) enum Incoming {
    Binary(Vec<u8>),
    Closed(String),
}

/// Reads the next binary message, answering pings; text frames are a protocol error.
pub(crate) async fn next_binary(
    ws: &mut Ws,
    context: &'static str,
) -> Result<Incoming, PhoneError> {
    loop {
        match ws.next().await {
            None => return Ok(Incoming::Closed("the connection ended".into())),
            Some(Err(e)) => {
                return Err(PhoneError::RelayDropped {
                    context,
                    reason: e.to_string(),
                })
            }
            Some(Ok(Message::Binary(b))) => return Ok(Incoming::Binary(b)),
            Some(Ok(Message::Close(frame))) => {
                return Ok(Incoming::Closed(match frame {
                    Some(f) => format!("closed with {} {:?}", u16::from(f.code), f.reason.to_string()),
                    None => "closed".into(),
                }))
            }
            Some(Ok(Message::Text(_))) => {
                return Err(PhoneError::PeerMisbehaved(format!(
                    "a text WebSocket message arrived while {context}; hybrid uses binary messages only"
                )))
            }
            Some(Ok(_)) => {}
        }
    }
}

pub(crate) async fn send(
    ws: &mut Ws,
    data: Vec<u8>,
    context: &'static str,
) -> Result<(), PhoneError> {
    ws.send(Message::Binary(data))
        .await
        .map_err(|e| PhoneError::RelayDropped {
            context,
            reason: e.to_string(),
        })
}

/// Closes with 1000 and waits briefly for the close handshake.
pub(crate) async fn close(ws: &mut Ws) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

//! Where each relay endpoint lives and how to ask for it (docs/PROTOCOL.md#tunnel-paths): a
//! [`Route`] is a request path (`TunnelConfig::url` puts it on a relay), [`check_base_url`]
//! and [`parse_connect_to`] check the settings that move it, and [`Upgrade`] is the one
//! WebSocket upgrade both `TunnelConfig::open` and `TunnelConfig::probe` send: the URL parsed,
//! the address to connect to after `--connect-to`, the TLS configuration for `wss://`, and the
//! request asking for the `fido.cable` subprotocol with the caller's headers.

use std::sync::Arc;

use hybrid_protocol::tunnel::{ContactId, TunnelPath, SUBPROTOCOL};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::error::RelayError;

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

/// A WebSocket upgrade about to be sent: everything `TunnelConfig::open` and
/// `TunnelConfig::probe` need before the first byte goes out.
pub(crate) struct Upgrade {
    /// The relay URL (after the override).
    pub(crate) url: String,
    /// The URL's host: the TLS server name.
    pub(crate) host: String,
    /// `host:port` to connect to: the URL's, or its `--connect-to` replacement.
    pub(crate) addr: String,
    /// The TLS configuration, for `wss://` only.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// The upgrade request: the URL, `Sec-WebSocket-Protocol: fido.cable` and the caller's
    /// headers.
    pub(crate) request: Request,
}

impl Upgrade {
    /// The upgrade for `url` with extra request `headers`, connecting where `connect_to`
    /// says for the URL's host; `tls` gives the TLS configuration when the URL is `wss://`.
    /// A URL or header that cannot be sent is [`RelayError::BadUrl`].
    pub(crate) fn new(
        url: String,
        connect_to: &[(String, String)],
        headers: &[(&str, String)],
        tls: impl FnOnce() -> Result<Arc<rustls::ClientConfig>, RelayError>,
    ) -> Result<Self, RelayError> {
        let target = Target::parse(&url)?;
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
        let tls = if target.tls { Some(tls()?) } else { None };
        let addr = connect_to
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(&target.host))
            .map_or_else(|| target.authority.clone(), |(_, t)| t.clone());
        Ok(Self {
            url,
            host: target.host,
            addr,
            tls,
            request,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_and_settings_parse() {
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
}

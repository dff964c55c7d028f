//! How to reach tunnel relays: one [`TunnelConfig`] (an override for every relay URL,
//! `--connect-to` host overrides, an extra CA file), checked without connecting before a QR
//! code shows, and what it gives: the URL of a route, the TLS configuration, the upgrade
//! request. Connecting is `tunnel`'s and `probe`'s.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::RelayError;
use crate::routes::{check_base_url, Route, Upgrade};
use crate::tls::TlsCache;

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
        self.tls_cache.get_or_build(self.extra_ca.as_deref())
    }

    /// The upgrade for `route` on the relay for `domain`, with extra request `headers`: the
    /// one request [`Self::open`] and [`Self::probe`] send.
    pub(crate) fn upgrade(
        &self,
        domain: &str,
        route: &Route,
        headers: &[(&str, String)],
    ) -> Result<Upgrade, RelayError> {
        Upgrade::new(self.url(domain, route), &self.connect_to, headers, || {
            self.tls()
        })
    }
}

#[cfg(test)]
mod tests {
    use hybrid_protocol::tunnel::SUBPROTOCOL;
    use hybrid_protocol::tunnel::{TunnelId, TunnelPath};

    use super::*;

    #[test]
    fn routes_go_to_the_domain_or_the_override() {
        let c = TunnelConfig::new(Some("ws://127.0.0.1:9/".into()), vec![], None);
        let r = Route::Register(None);
        assert_eq!(c.url("x.example", &r), "ws://127.0.0.1:9/cable/register");
        let c = TunnelConfig::default();
        assert_eq!(c.url("x.example", &r), "wss://x.example/cable/register");
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
    fn the_upgrade_asks_for_fido_cable_with_the_callers_headers() {
        let c = TunnelConfig::new(
            Some("ws://relay.example".into()),
            vec![("RELAY.example".into(), "127.0.0.1:9".into())],
            None,
        );
        let route = Route::Tunnel(TunnelPath::New(TunnelId([7; 16])));
        let u = c
            .upgrade("cable.ua5v.com", &route, &[("X-Test", "yes".into())])
            .unwrap();
        assert_eq!(u.url, c.url("cable.ua5v.com", &route));
        assert_eq!(u.request.uri().to_string(), u.url);
        let h = u.request.headers();
        assert_eq!(h["Sec-WebSocket-Protocol"], SUBPROTOCOL);
        assert_eq!(h["X-Test"], "yes");
        assert_eq!(u.host, "relay.example");
        assert_eq!(
            u.addr, "127.0.0.1:9",
            "--connect-to matches the host in any case"
        );
        assert!(u.tls.is_none(), "ws:// has no TLS");

        let plain = TunnelConfig::new(Some("ws://relay.example:8080".into()), vec![], None);
        assert_eq!(
            plain.upgrade("d", &route, &[]).unwrap().addr,
            "relay.example:8080"
        );
        let e = plain
            .upgrade("d", &route, &[("X-Bad", "line\nbreak".into())])
            .err()
            .unwrap();
        assert!(
            matches!(&e, RelayError::BadUrl { reason, .. } if reason == "request header X-Bad cannot be sent"),
            "{e}"
        );
    }
}

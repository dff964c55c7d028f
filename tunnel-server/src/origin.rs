//! Which `Origin` headers the WebSocket endpoints accept (README "Threat model", "Browser
//! pages"). A browser attaches the page's origin to every WebSocket a page opens, and the
//! page cannot leave it out or change it; programs attach whatever they like. So the header
//! cannot prove who a client is, but it does tell a web page apart, and no web page has any
//! business on a hybrid relay: without this rule any site could make each of its visitors
//! hold up to `--max-connections-per-ip` tunnels and fill `--max-tunnels`.
//!
//! - No `Origin`: accepted. Phones (phone-sim, Android, iOS) and this project's desktop
//!   (`tunnel-client`) send none.
//! - A `ws://` or `wss://` origin: accepted. Chromium's hybrid code, on the desktop
//!   (`device/fido/cable/fido_tunnel_device.cc`, `/cable/connect` and `/cable/contact`) and as
//!   a phone (`v2_authenticator.cc`, `/cable/new`), opens its tunnel with
//!   `NetworkContext::CreateWebSocket(url, …, url::Origin::Create(url), …)`: the origin of the
//!   tunnel URL itself, `wss://<relay host>`. A page's origin is never `ws:` or `wss:`.
//! - Any other origin (`https://…`, `http://…`, an extension's, or the opaque `null` of a
//!   sandboxed document): a page, refused with 403 on every endpoint unless
//!   `--allowed-origin` lists it. `/cable/register` refuses every `Origin`, listed or not:
//!   only phones register.

use http::header::{self, HeaderMap};
use http::Uri;

/// Why an `Origin` was refused; the text is the 403's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Any `Origin` on `/cable/register`.
    PhoneOnly,
    /// A page's origin on a tunnel endpoint, not in `--allowed-origin`.
    Page,
}

impl Refused {
    /// The body of the 403.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::PhoneOnly => "/cable/register is for phones, which send no Origin header; a request with one comes from a browser and is refused\n",
            Self::Page => "this relay carries hybrid tunnels for phones and desktop clients, which send no Origin header or their tunnel URL's own wss:// origin; a web page's origin is refused (the relay's operator can allow one with --allowed-origin)\n",
        }
    }
}

/// Which kind of endpoint a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/cable/new`, `/cable/connect`, `/cable/contact`.
    Tunnel,
    /// `/cable/register[/<id>]`.
    Register,
}

/// Checks the request's `Origin` header against the rule in the module doc.
pub(crate) fn check(
    headers: &HeaderMap,
    endpoint: Endpoint,
    allowed_origins: &[String],
) -> Result<(), Refused> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if endpoint == Endpoint::Register {
        return Err(Refused::PhoneOnly);
    }
    let Ok(origin) = origin.to_str() else {
        return Err(Refused::Page);
    };
    let origin = origin.trim();
    if is_websocket_origin(origin)
        || allowed_origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(origin))
    {
        Ok(())
    } else {
        Err(Refused::Page)
    }
}

/// Whether `origin` is a `ws://` or `wss://` origin with a host (the origin of a tunnel URL).
fn is_websocket_origin(origin: &str) -> bool {
    origin.parse::<Uri>().is_ok_and(|u| {
        u.scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("wss") || s.eq_ignore_ascii_case("ws"))
            && u.host().is_some_and(|h| !h.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        h
    }

    #[test]
    fn no_origin_is_accepted_everywhere() {
        for e in [Endpoint::Tunnel, Endpoint::Register] {
            assert_eq!(check(&HeaderMap::new(), e, &[]), Ok(()));
        }
    }

    #[test]
    fn the_tunnel_urls_own_origin_is_accepted_on_tunnel_endpoints() {
        for o in [
            "wss://cable.ua5v.com",
            "wss://cable.auth.com",
            "WSS://relay.example:8443",
            "ws://127.0.0.1:4000",
        ] {
            assert_eq!(check(&with(o), Endpoint::Tunnel, &[]), Ok(()), "{o}");
        }
    }

    #[test]
    fn page_origins_are_refused_unless_listed() {
        for o in [
            "https://any-website.example",
            "http://localhost:3000",
            "null",
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
            "moz-extension://0b6a3b3c-0000-4000-8000-000000000000",
            "wss://",
            "",
        ] {
            assert_eq!(
                check(&with(o), Endpoint::Tunnel, &[]),
                Err(Refused::Page),
                "{o}"
            );
        }
        let listed = ["https://webapp.example".to_string()];
        assert_eq!(
            check(&with("https://WebApp.example"), Endpoint::Tunnel, &listed),
            Ok(())
        );
        assert_eq!(
            check(&with("https://other.example"), Endpoint::Tunnel, &listed),
            Err(Refused::Page)
        );
    }

    #[test]
    fn register_refuses_every_origin() {
        let listed = ["https://webapp.example".to_string()];
        for o in ["https://webapp.example", "wss://cable.ua5v.com", "null"] {
            assert_eq!(
                check(&with(o), Endpoint::Register, &listed),
                Err(Refused::PhoneOnly),
                "{o}"
            );
        }
    }
}

//! The HTTP layer (docs/PROTOCOL.md#tunnel-paths): routes `/healthz`, `/readyz`, `/metrics` (GET or
//! HEAD; `/metrics` only on the metrics listener when one is configured), `/cable/new`,
//! `/cable/connect`, `/cable/contact` and `/cable/register`, checks the method, the WebSocket
//! upgrade headers, the `fido.cable` subprotocol and the `Origin` (`crate::origin`: no web
//! page; the phone-only `/cable/register` refuses any Origin), reserves
//! the tunnel or contact slot, and answers 101 (leaving the relay task that takes over the
//! upgraded socket) or a status: 400 malformed, 403 origin or a resume without the phone's
//! registration secret, 404 unknown, 405 wrong method, 409 duplicate, 410 gone contact, 429
//! too many registrations, 503 full or shutting down (with `Retry-After: 1`; a draining relay
//! still lets a waiting tunnel be joined).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hybrid_protocol::contact::{CONTACT_ID_HEADER, REGISTRATION_SECRET_HEADER};
use hybrid_protocol::tunnel::{
    ContactId, TunnelPath, CLIENT_PAYLOAD_HEADER, ROUTING_ID_HEADER, SIGNAL_CONNECTION_HEADER,
    SUBPROTOCOL,
};
use hyper::body::{Bytes, Incoming};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::debug;

use crate::contact::{self, NotRegistered};
use crate::metrics::Rejection;
use crate::origin;
use crate::relay;
use crate::state::{ConnGuard, Phase, Shared};
use crate::table::Refusal;

/// The 503 body of a relay that is shutting down (also `/readyz`'s).
const SHUTTING_DOWN: &str = "shutting down\n";

/// Longest accepted `X-caBLE-Client-Payload` value, in hex digits (the payload is ~40 bytes).
const MAX_CLIENT_PAYLOAD_HEX: usize = 1024;

type Body = Full<Bytes>;

/// What a request asks for, once its path is understood.
enum Route {
    Page(Page),
    Socket(Socket),
}

/// A plain HTTP page for operators, answered to GET and HEAD.
#[derive(Clone, Copy)]
enum Page {
    /// 200 while the process serves.
    Health,
    /// 200 while accepting new tunnels, 503 once shutdown has begun.
    Ready,
    Metrics,
}

/// A WebSocket endpoint.
enum Socket {
    Tunnel(TunnelPath),
    Register(Option<ContactId>),
}

/// Answers one request. Never panics on any input.
pub(crate) fn handle(
    mut req: Request<Incoming>,
    guard: &Arc<ConnGuard>,
    after: &Deferred,
) -> Response<Body> {
    let shared = guard.shared().clone();
    let reject = |r: Rejection, status: StatusCode| {
        shared.metrics.rejected(r);
        debug!(reason = ?r, %status, "request rejected");
        plain(status, status.canonical_reason().unwrap_or(""))
    };
    let route = match route(req.uri().path()) {
        Ok(Some(r)) => r,
        Ok(None) => return reject(Rejection::NotFound, StatusCode::NOT_FOUND),
        Err(()) => return reject(Rejection::BadPath, StatusCode::BAD_REQUEST),
    };
    let socket = match route {
        // Operators who give metrics their own listener do not want them public.
        Route::Page(Page::Metrics) if shared.config.metrics_listen.is_some() => {
            return reject(Rejection::NotFound, StatusCode::NOT_FOUND)
        }
        Route::Page(p) => {
            return page(p, req.method(), &shared).unwrap_or_else(|| {
                let mut resp = reject(Rejection::MethodNotAllowed, StatusCode::METHOD_NOT_ALLOWED);
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(PAGE_METHODS));
                resp
            })
        }
        Route::Socket(socket) => socket,
    };
    if req.method() != Method::GET {
        let mut resp = reject(Rejection::MethodNotAllowed, StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return resp;
    }
    if draining_refuses(&socket, &shared) {
        let _ = reject(Rejection::ShuttingDown, StatusCode::SERVICE_UNAVAILABLE);
        let mut resp = plain(StatusCode::SERVICE_UNAVAILABLE, SHUTTING_DOWN);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        // A restarting relay (or the next pod behind the proxy) takes new tunnels within
        // seconds; the bridge and phone-sim wait at least this long before trying again.
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }
    let endpoint = match socket {
        Socket::Tunnel(_) => origin::Endpoint::Tunnel,
        Socket::Register(_) => origin::Endpoint::Register,
    };
    if let Err(refused) = origin::check(req.headers(), endpoint, &shared.config.allowed_origins) {
        let _ = reject(Rejection::Origin, StatusCode::FORBIDDEN);
        return plain(StatusCode::FORBIDDEN, refused.message());
    }
    let accept = match check_upgrade(req.headers()) {
        Ok(a) => a,
        Err((r, s)) => return reject(r, s),
    };
    let tunnel = match socket {
        Socket::Tunnel(t) => t,
        Socket::Register(c) => return register(c, accept, &mut req, guard, after, &reject),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let mut resp = switching(&accept);
    match tunnel {
        TunnelPath::New(id) => {
            let opened = shared.state().table.handle_open(id);
            let (gen, rx) = match opened {
                Ok(x) => x,
                Err(r) => return refused(r, &reject),
            };
            insert(
                &mut resp,
                ROUTING_ID_HEADER,
                &shared.config.routing_id.to_hex(),
            );
            defer(
                after,
                relay::first(guard.clone(), on_upgrade, id, gen, rx, false),
            );
        }
        TunnelPath::Connect(_routing, id) => {
            // The routing ID chose the instance (the proxy's job); pairing is by tunnel ID.
            let joined = shared.state().table.handle_connect(id);
            let joiner = match joined {
                Ok(j) => j,
                Err(r) => return refused(r, &reject),
            };
            defer(after, relay::join(guard.clone(), on_upgrade, joiner));
        }
        TunnelPath::Contact(contact) => {
            let Some(payload) = client_payload(req.headers()) else {
                return reject(Rejection::MissingClientPayload, StatusCode::BAD_REQUEST);
            };
            let signal = req
                .headers()
                .get(SIGNAL_CONNECTION_HEADER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            let now = tokio::time::Instant::now().into_std();
            let expiry = now + shared.config.limits.tunnel_lifetime;
            let (id, gen, rx) = match contact::wake(&shared, &contact, payload, now, expiry) {
                Ok(w) => w,
                Err(r) => return refused(r, &reject),
            };
            if signal {
                insert(&mut resp, SIGNAL_CONNECTION_HEADER, "true");
            }
            defer(
                after,
                relay::first(guard.clone(), on_upgrade, id, gen, rx, signal),
            );
        }
    }
    resp
}

/// Answers a request on the metrics listener (`--metrics-listen`): the operator pages only.
pub(crate) fn handle_metrics_listener<B>(req: &Request<B>, shared: &Shared) -> Response<Body> {
    let Ok(Some(Route::Page(p))) = route(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    page(p, req.method(), shared).unwrap_or_else(|| {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(PAGE_METHODS));
        resp
    })
}

/// The methods [`page`] answers.
const PAGE_METHODS: &str = "GET, HEAD";

/// An operator page, or `None` for a method other than GET and HEAD. A HEAD gets the same
/// answer; hyper leaves out its body.
fn page(p: Page, method: &Method, shared: &Shared) -> Option<Response<Body>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    Some(match p {
        Page::Health => plain(StatusCode::OK, "ok\n"),
        Page::Ready => match *shared.phase.borrow() {
            Phase::Running => plain(StatusCode::OK, "ready\n"),
            Phase::Draining | Phase::Closing => {
                plain(StatusCode::SERVICE_UNAVAILABLE, SHUTTING_DOWN)
            }
        },
        Page::Metrics => {
            let mut resp = plain(StatusCode::OK, &shared.metrics.render(&shared.gauges()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
    })
}

/// Whether a shutdown refuses this request: everything that would start something here (a
/// tunnel, a wake-up, a registration) once the drain has begun. Joining a waiting tunnel is
/// still served: its first side is here, and its peer has nowhere else to go. A proxy tries
/// another instance on the 503.
fn draining_refuses(socket: &Socket, shared: &Shared) -> bool {
    *shared.phase.borrow() != Phase::Running
        && !matches!(socket, Socket::Tunnel(TunnelPath::Connect(..)))
}

fn register(
    contact: Option<ContactId>,
    accept: String,
    req: &mut Request<Incoming>,
    guard: &Arc<ConnGuard>,
    after: &Deferred,
    reject: &dyn Fn(Rejection, StatusCode) -> Response<Body>,
) -> Response<Body> {
    let now = tokio::time::Instant::now().into_std();
    let registered = match contact::register(contact, req.headers(), guard, now) {
        Ok(r) => r,
        Err(NotRegistered::Refused(r)) => return refused(r, reject),
        Err(NotRegistered::RateLimited(limit)) => {
            debug!(?limit, "minting refused by a rate limit");
            return reject(Rejection::RateLimited, StatusCode::TOO_MANY_REQUESTS);
        }
        Err(NotRegistered::Denied(d)) => {
            let _ = reject(Rejection::RegistrationSecret, StatusCode::FORBIDDEN);
            return plain(StatusCode::FORBIDDEN, d.message());
        }
    };
    let on_upgrade = hyper::upgrade::on(req);
    let mut resp = switching(&accept);
    insert(
        &mut resp,
        CONTACT_ID_HEADER,
        &registered.contact.to_base64url(),
    );
    if let Some(secret) = &registered.secret {
        insert(
            &mut resp,
            REGISTRATION_SECRET_HEADER,
            &secret.to_base64url(),
        );
    }
    let key = registered.key;
    defer(
        after,
        contact::socket::registration(guard.clone(), on_upgrade, key),
    );
    resp
}

/// The WebSocket task of an upgraded connection. The connection's own task runs it once hyper
/// hands over the socket (saving a spawn and a cross-thread wake-up per connection), and runs
/// it even if the upgrade fails, so the task's cleanup (the table slot) always happens.
pub(crate) type Deferred = Arc<Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>>;

fn defer(after: &Deferred, task: impl Future<Output = ()> + Send + 'static) {
    *after.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::pin(task));
}

fn refused(r: Refusal, reject: &dyn Fn(Rejection, StatusCode) -> Response<Body>) -> Response<Body> {
    match r {
        Refusal::Conflict => reject(Rejection::Conflict, StatusCode::CONFLICT),
        Refusal::UnknownTunnel => reject(Rejection::UnknownTunnel, StatusCode::NOT_FOUND),
        Refusal::Gone => reject(Rejection::ContactGone, StatusCode::GONE),
        Refusal::Full => reject(Rejection::Full, StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// `Ok(None)`: not ours (404); `Err`: a `/cable/` path that does not parse (400).
fn route(path: &str) -> Result<Option<Route>, ()> {
    match path {
        "/healthz" => return Ok(Some(Route::Page(Page::Health))),
        "/readyz" => return Ok(Some(Route::Page(Page::Ready))),
        "/metrics" => return Ok(Some(Route::Page(Page::Metrics))),
        "/cable/register" => return Ok(Some(Route::Socket(Socket::Register(None)))),
        _ => {}
    }
    if let Some(id) = path.strip_prefix("/cable/register/") {
        return ContactId::from_base64url(id)
            .map(|c| Some(Route::Socket(Socket::Register(Some(c)))))
            .map_err(|_| ());
    }
    if !path.starts_with("/cable/") {
        return Ok(None);
    }
    TunnelPath::parse(path)
        .map(|t| Some(Route::Socket(Socket::Tunnel(t))))
        .map_err(|_| ())
}

/// Checks a WebSocket upgrade request; returns the `Sec-WebSocket-Accept` value.
fn check_upgrade(headers: &HeaderMap) -> Result<String, (Rejection, StatusCode)> {
    let bad = Err((Rejection::BadUpgrade, StatusCode::BAD_REQUEST));
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return bad;
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return bad;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return bad;
    };
    if key.len() != 24 {
        return bad;
    }
    if !has_token(headers, header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL) {
        return Err((Rejection::NoSubprotocol, StatusCode::BAD_REQUEST));
    }
    Ok(derive_accept_key(key.as_bytes()))
}

/// Whether a comma-separated header (possibly repeated) contains `token`, ignoring case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The client payload header: non-empty, even-length hex, bounded.
fn client_payload(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CLIENT_PAYLOAD_HEADER)?.to_str().ok()?.trim();
    let ok = !v.is_empty()
        && v.len() % 2 == 0
        && v.len() <= MAX_CLIENT_PAYLOAD_HEX
        && v.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| v.to_string())
}

fn switching(accept: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    insert(&mut resp, header::SEC_WEBSOCKET_ACCEPT.as_str(), accept);
    resp
}

fn insert(resp: &mut Response<Body>, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        header::HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        resp.headers_mut().insert(n, v);
    }
}

fn plain(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(
            route("/healthz"),
            Ok(Some(Route::Page(Page::Health)))
        ));
        assert!(matches!(
            route("/readyz"),
            Ok(Some(Route::Page(Page::Ready)))
        ));
        assert!(matches!(route("/nope"), Ok(None)));
        assert!(matches!(route("/cable/new/zz"), Err(())));
        assert!(matches!(
            route("/cable/register"),
            Ok(Some(Route::Socket(Socket::Register(None))))
        ));
        assert!(matches!(
            route("/cable/register/AQID"),
            Ok(Some(Route::Socket(Socket::Register(Some(_)))))
        ));
        assert!(matches!(route("/cable/register/a=b"), Err(())));
        assert!(matches!(
            route(&format!("/cable/new/{}", "ab".repeat(16))),
            Ok(Some(Route::Socket(Socket::Tunnel(TunnelPath::New(_)))))
        ));
    }

    #[test]
    fn route_never_panics_on_truncations_and_bit_flips() {
        let paths = [
            format!("/cable/new/{}", "ab".repeat(16)),
            format!("/cable/connect/0A0B0C/{}", "AB".repeat(16)),
            "/cable/contact/CgsMAQIDBAUGBwgJCgsMDQ4PEA".to_string(),
            "/cable/register/CgsMAQIDBAUGBwgJCgsMDQ4PEA".to_string(),
        ];
        for p in paths {
            let bytes = p.as_bytes();
            for n in 0..=bytes.len() {
                if let Ok(s) = std::str::from_utf8(&bytes[..n]) {
                    let _ = route(s);
                }
            }
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut b = bytes.to_vec();
                    b[i] ^= 1 << bit;
                    let _ = route(&String::from_utf8_lossy(&b));
                }
            }
        }
    }

    #[test]
    fn payload_header() {
        let mut h = HeaderMap::new();
        assert_eq!(client_payload(&h), None);
        h.insert(CLIENT_PAYLOAD_HEADER, HeaderValue::from_static("A1b2"));
        assert_eq!(client_payload(&h).as_deref(), Some("A1b2"));
        h.insert(CLIENT_PAYLOAD_HEADER, HeaderValue::from_static("A1b"));
        assert_eq!(client_payload(&h), None);
        h.insert(CLIENT_PAYLOAD_HEADER, HeaderValue::from_static("zz"));
        assert_eq!(client_payload(&h), None);
    }
}

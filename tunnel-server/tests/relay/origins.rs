//! Browser pages on the relay: a web page's `Origin` is refused on every WebSocket endpoint
//! (so no site can make its visitors fill `--max-tunnels`), while programs (no `Origin`) and
//! Chromium's hybrid code (the tunnel URL's own `wss://` origin) keep working.

use hybrid_protocol::tunnel::{ContactId, TunnelPath};

use crate::support::*;

const PAGE: (&str, &str) = ("Origin", "https://any-website.example");

fn contact_path(id: &ContactId) -> String {
    TunnelPath::Contact(id.clone()).to_path()
}

/// With `--max-tunnels 3`, three upgrades from a web page would leave every phone a 503.
/// They are refused, and the three slots stay for phones.
#[tokio::test]
async fn web_pages_cannot_fill_the_tunnel_cap() {
    let mut c = config();
    c.limits.max_tunnels = 3;
    let server = start(c).await;
    for n in 1..=3 {
        match open(&server, &new_path(tunnel(n)), &[PAGE]).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 403, "page upgrade {n}");
                let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
                assert!(body.contains("web page"), "{body}");
            }
            Err(e) => panic!("expected 403, got {e}"),
            Ok(_) => panic!("a web page opened tunnel {n}"),
        }
    }
    assert_eq!(
        metric(&server, "tunnel_server_rejected_total{reason=\"origin\"}").await,
        3
    );
    let mut phones = Vec::new();
    for n in 11..=13 {
        phones.push(ok(&server, &new_path(tunnel(n))).await);
    }
    assert_eq!(status(open(&server, &new_path(tunnel(14)), &[]).await), 503);
}

/// Chromium opens its tunnels with the origin of the tunnel URL (`wss://<relay host>`),
/// as a phone (`/cable/new`) and as a desktop (`/cable/connect`): both pair and relay.
#[tokio::test]
async fn chromium_hybrid_origins_pair() {
    let server = start(config()).await;
    let chromium = [("Origin", "wss://cable.example")];
    let t = tunnel(1);
    let mut phone = open(&server, &new_path(t), &chromium).await.unwrap().0;
    let mut desktop = open(&server, &connect_path(t), &chromium).await.unwrap().0;
    send(&mut desktop, b"hello").await;
    assert_eq!(recv(&mut phone).await, b"hello");
}

/// `/cable/connect` and `/cable/contact` refuse a page too, and a refused join leaves the
/// waiting phone for the real desktop. The opaque `null` of a sandboxed page is a page.
#[tokio::test]
async fn pages_are_refused_on_connect_and_contact() {
    let server = start(config()).await;
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    for origin in ["https://any-website.example", "null"] {
        let h = [("Origin", origin)];
        assert_eq!(
            status(open(&server, &connect_path(t), &h).await),
            403,
            "{origin}"
        );
    }
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut phone, b"still paired").await;
    assert_eq!(recv(&mut desktop).await, b"still paired");

    let (_registration, id, _secret) = register_with_secret(&server).await;
    let payload = ("X-caBLE-Client-Payload", "a1b2");
    assert_eq!(
        status(open(&server, &contact_path(&id), &[PAGE, payload]).await),
        403
    );
    open(
        &server,
        &contact_path(&id),
        &[("Origin", "wss://cable.example"), payload],
    )
    .await
    .expect("Chromium's linked-phone origin");
}

/// An operator who runs a web client can allow its origin with `--allowed-origin`; other
/// pages stay refused.
#[tokio::test]
async fn an_allowed_page_origin_may_open_tunnels() {
    let server = start(tunnel_server::Config {
        allowed_origins: vec!["https://webapp.example".into()],
        ..config()
    })
    .await;
    open(
        &server,
        &new_path(tunnel(1)),
        &[("Origin", "https://webapp.example")],
    )
    .await
    .expect("listed page origin");
    assert_eq!(
        status(open(&server, &new_path(tunnel(2)), &[PAGE]).await),
        403
    );
}

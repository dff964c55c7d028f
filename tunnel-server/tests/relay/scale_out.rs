//! Scale-out: Debian nginx with the shipped `deploy/nginx/tunnel-server.conf` in front of two
//! in-process instances (routing IDs 0A0B0C and 0D0E0F) on loopback. QR ceremonies succeed
//! whichever instance took `/cable/new`, and contact wake-ups route to the owning instance.

use std::collections::HashSet;

use hybrid_protocol::tunnel::{ContactId, RoutingId, TunnelPath};
use tunnel_server::{Config, RunningServer};

use crate::nginx::Nginx;
use crate::support::*;

/// Starts nginx with the shipped site config, templated for the test's ports.
async fn start_nginx(a: u16, b: u16) -> Nginx {
    let shipped = include_str!("../../deploy/nginx/tunnel-server.conf");
    let port = test_support::net::closed_port().port();
    let site: String = shipped
        .lines()
        .filter(|l| !l.trim_end().ends_with("# tls"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{a}"))
        .replace("127.0.0.1:8082", &format!("127.0.0.1:{b}"))
        .replace(
            "server {\n",
            &format!("server {{\n    listen 127.0.0.1:{port};\n"),
        );
    assert!(site.contains(&format!("listen 127.0.0.1:{port};")));
    Nginx::start(&site, port, 512, async |port| {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await
}

async fn instance(routing: [u8; 3]) -> RunningServer {
    let mut c = Config {
        routing_id: RoutingId(routing),
        ..Config::default()
    };
    // As deploy/README.md says: the proxy does per-client limits.
    c.limits.max_connections_per_ip = 0;
    c.limits.registrations_per_ip_per_minute = 0;
    RunningServer::start(c).await.unwrap()
}

#[tokio::test]
async fn ceremonies_and_wake_ups_route_through_nginx() {
    let a = instance([0x0a, 0x0b, 0x0c]).await;
    let b = instance([0x0d, 0x0e, 0x0f]).await;
    let nginx = start_nginx(a.addr().port(), b.addr().port()).await;
    let base = format!("ws://127.0.0.1:{}", nginx.port);

    // QR flow: /new is spread; /connect must reach the instance that took it.
    let mut seen = HashSet::new();
    for n in 0..8u8 {
        let t = tunnel(0x40 + n);
        let (mut phone, resp) = open_url(&format!("{base}{}", new_path(t)), &[])
            .await
            .unwrap();
        assert_eq!(resp.headers()["Sec-WebSocket-Protocol"], "fido.cable");
        let routing =
            RoutingId::from_hex(resp.headers()["X-caBLE-Routing-ID"].to_str().unwrap()).unwrap();
        seen.insert(routing);
        let connect = TunnelPath::Connect(routing, t).to_path();
        let mut desktop = open_url(&format!("{base}{}", connect.to_lowercase()), &[])
            .await
            .unwrap()
            .0;
        send(&mut desktop, &[n; 81]).await;
        assert_eq!(recv(&mut phone).await, vec![n; 81]);
        send(&mut phone, &[n; 81]).await;
        assert_eq!(recv(&mut desktop).await, vec![n; 81]);
    }
    assert_eq!(seen.len(), 2, "round robin used both instances: {seen:?}");

    // Linked flow: registrations are spread; contact and resume go to the minting instance.
    let mut owners = HashSet::new();
    for _ in 0..4 {
        let (mut reg, resp) = open_url(&format!("{base}/cable/register"), &[])
            .await
            .unwrap();
        let id = ContactId::from_base64url(resp.headers()["X-caBLE-Contact-ID"].to_str().unwrap())
            .unwrap();
        let secret = resp.headers()["X-caBLE-Registration-Secret"]
            .to_str()
            .unwrap()
            .to_string();
        owners.insert(id.0[..3].to_vec());
        let contact = format!("{base}{}", TunnelPath::Contact(id.clone()).to_path());
        let mut client = open_url(
            &contact,
            &[
                ("X-caBLE-Client-Payload", "A1"),
                ("X-caBLE-Signal-Connection", "true"),
            ],
        )
        .await
        .unwrap()
        .0;
        let v: serde_json::Value = serde_json::from_slice(&recv(&mut reg).await).unwrap();
        let path = format!(
            "/cable/connect/{}/{}",
            v["routing_id"].as_str().unwrap(),
            v["tunnel_id"].as_str().unwrap()
        );
        let mut phone = open_url(&format!("{base}{path}"), &[]).await.unwrap().0;
        assert_eq!(recv(&mut client).await, vec![0]);
        send(&mut phone, b"msg2").await;
        assert_eq!(recv(&mut client).await, b"msg2");
        drop(reg);
        let resume = format!("{base}/cable/register/{}", id.to_base64url());
        let h = [("X-caBLE-Registration-Secret", secret.as_str())];
        let (_reg, resp) = open_url(&resume, &h).await.unwrap();
        assert_eq!(
            resp.headers()["X-caBLE-Contact-ID"],
            id.to_base64url().as_str()
        );
    }
    assert_eq!(owners.len(), 2, "registrations used both instances");
    drop(nginx);
}

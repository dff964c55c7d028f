//! Every limit: messages per side, queued messages, message size, lifetime, idle, tunnels,
//! connections per IP and in total, contacts.

use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

#[tokio::test]
async fn messages_per_side_limit_closes_both_with_policy() {
    let mut c = config();
    c.limits.messages_per_side = 3;
    let server = start(c).await;
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    for i in 0..3u8 {
        send(&mut desktop, &[i]).await;
        assert_eq!(recv(&mut phone).await, vec![i]);
    }
    send(&mut desktop, b"one too many").await;
    assert_eq!(closed(&mut phone).await, CloseCode::Policy);
    assert_eq!(closed(&mut desktop).await, CloseCode::Policy);
    await_metric(
        &server,
        "tunnel_server_closes_total{reason=\"too_many_messages\"}",
        1,
    )
    .await;
}

#[tokio::test]
async fn queue_limit_closes_waiting_side() {
    let mut c = config();
    c.limits.max_queued_messages = 2;
    let server = start(c).await;
    let mut phone = ok(&server, &new_path(tunnel(1))).await;
    for i in 0..3u8 {
        send(&mut phone, &[i]).await;
    }
    assert_eq!(closed(&mut phone).await, CloseCode::Policy);
}

#[tokio::test]
async fn oversized_message_closes_both_with_1009() {
    let mut c = config();
    c.limits.max_message_size = 1024;
    let server = start(c).await;
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut desktop, &[1; 1024]).await;
    assert_eq!(recv(&mut phone).await.len(), 1024);
    send(&mut desktop, &[1; 1025]).await;
    assert_eq!(closed(&mut desktop).await, CloseCode::Size);
    assert_eq!(closed(&mut phone).await, CloseCode::Size);
}

#[tokio::test]
async fn lifetime_closes_waiting_and_paired_tunnels() {
    let mut c = config();
    c.limits.tunnel_lifetime = Duration::from_millis(1000);
    let server = start(c).await;
    let mut waiting = ok(&server, &new_path(tunnel(1))).await;
    let mut phone = ok(&server, &new_path(tunnel(2))).await;
    let mut desktop = ok(&server, &connect_path(tunnel(2))).await;
    assert_eq!(closed(&mut waiting).await, CloseCode::Policy);
    assert_eq!(closed(&mut phone).await, CloseCode::Policy);
    assert_eq!(closed(&mut desktop).await, CloseCode::Policy);
    await_metric(
        &server,
        "tunnel_server_closes_total{reason=\"lifetime\"}",
        2,
    )
    .await;
}

#[tokio::test]
async fn idle_timeout_closes_a_silent_pair() {
    let mut c = config();
    c.limits.idle_timeout = Duration::from_millis(200);
    let server = start(c).await;
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    assert_eq!(closed(&mut phone).await, CloseCode::Policy);
    assert_eq!(closed(&mut desktop).await, CloseCode::Policy);
    await_metric(&server, "tunnel_server_closes_total{reason=\"idle\"}", 1).await;
}

/// Whether the server drops a fresh TCP connection without answering.
async fn dropped(server: &tunnel_server::RunningServer) -> bool {
    let mut tcp = TcpStream::connect(server.addr()).await.expect("connect");
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(WAIT, tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn per_ip_connection_limit() {
    let mut c = config();
    c.limits.max_connections_per_ip = 2;
    let server = start(c).await;
    let a = ok(&server, &new_path(tunnel(1))).await;
    let _b = ok(&server, &new_path(tunnel(2))).await;
    assert!(dropped(&server).await);
    drop(a);
    // `/metrics` needs a slot too: it answers once `a` is gone.
    await_metric(&server, "tunnel_server_tunnels_open", 1).await;
    assert_eq!(
        metric(
            &server,
            "tunnel_server_rejected_total{reason=\"per_ip_limit\"}"
        )
        .await,
        1
    );
    let _c = ok(&server, &new_path(tunnel(3))).await;
}

#[tokio::test]
async fn total_connection_limit() {
    let mut c = config();
    c.limits.max_connections = 1;
    let server = start(c).await;
    let _a = ok(&server, &new_path(tunnel(1))).await;
    assert!(dropped(&server).await);
}

#[tokio::test]
async fn contact_registrations_are_bounded() {
    let mut c = config();
    c.limits.max_contacts = 1;
    let server = start(c).await;
    let _phone = ok(&server, "/cable/register").await;
    assert_eq!(status(open(&server, "/cable/register", &[]).await), 503);
}

#[tokio::test]
async fn contact_minting_is_rate_limited_per_ip_but_resuming_is_not() {
    let mut c = config();
    c.limits.registrations_per_ip_per_minute = 2;
    let server = start(c).await;
    let (_a, resp) = open(&server, "/cable/register", &[]).await.unwrap();
    let id = resp.headers()["X-caBLE-Contact-ID"]
        .to_str()
        .unwrap()
        .to_string();
    let secret = resp.headers()["X-caBLE-Registration-Secret"]
        .to_str()
        .unwrap()
        .to_string();
    let _b = ok(&server, "/cable/register").await;
    assert_eq!(status(open(&server, "/cable/register", &[]).await), 429);
    for _ in 0..3 {
        let resume = format!("/cable/register/{id}");
        let h = [("X-caBLE-Registration-Secret", secret.as_str())];
        let _resumed = open(&server, &resume, &h).await.unwrap();
    }
    assert_eq!(
        metric(
            &server,
            "tunnel_server_rejected_total{reason=\"registration_rate\"}"
        )
        .await,
        1
    );
}

/// Sends a ping and waits for its pong: the relay has then read everything sent before it.
async fn synced(ws: &mut Ws) {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::Ping(b"sync".to_vec()))
        .await
        .expect("ping");
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("pong within the bound");
        match m {
            Some(Ok(Message::Pong(_))) => return,
            Some(Ok(_)) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

/// A waiting tunnel may queue a ceremony's worth of bytes, not 16 × 16 KiB.
#[tokio::test]
async fn prejoin_byte_cap_closes_a_waiting_tunnel_with_1008() {
    let server = start(config()).await;
    // A linked-flow client sends Noise msg1 (81 bytes) before the phone arrives: delivered.
    let t = tunnel(1);
    let mut client = ok(&server, &new_path(t)).await;
    send(&mut client, &[0x81; 81]).await;
    synced(&mut client).await;
    let mut phone = ok(&server, &connect_path(t)).await;
    assert_eq!(recv(&mut phone).await, vec![0x81; 81]);
    // A tunnel that queues 5 × 1000 bytes (default cap 4096) is closed with 1008.
    let mut greedy = ok(&server, &new_path(tunnel(2))).await;
    for _ in 0..5 {
        send(&mut greedy, &[7; 1000]).await;
    }
    assert_eq!(closed(&mut greedy).await, CloseCode::Policy);
    await_metric(
        &server,
        "tunnel_server_closes_total{reason=\"too_many_messages\"}",
        1,
    )
    .await;
}

/// Bytes held for absent peers are a global budget; over it, 1013, and
/// ceremonies (and tunnels that queue nothing) continue.
#[tokio::test]
async fn queued_bytes_budget_refuses_with_1013_and_ceremonies_continue() {
    let mut c = config();
    c.limits.max_message_size = 1024;
    c.limits.max_prejoin_bytes = 1024;
    // One talking waiting socket costs 8 KiB + 2 × 1 KiB of buffers plus what it queued.
    c.limits.max_queued_bytes = 8192 + 2 * 1024 + 1024;
    let server = start(c).await;
    let mut first = ok(&server, &new_path(tunnel(1))).await;
    send(&mut first, &[1; 1000]).await;
    synced(&mut first).await;
    let mut second = ok(&server, &new_path(tunnel(2))).await;
    send(&mut second, &[2; 10]).await;
    assert_eq!(closed(&mut second).await, CloseCode::Again);
    await_metric(&server, "tunnel_server_closes_total{reason=\"busy\"}", 1).await;
    // A QR ceremony queues nothing and is not affected.
    let t = tunnel(3);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut desktop, b"msg1").await;
    assert_eq!(recv(&mut phone).await, b"msg1");
    send(&mut phone, b"msg2").await;
    assert_eq!(recv(&mut desktop).await, b"msg2");
    // Once the first tunnel pairs, its bytes are released and early data fits again.
    let mut joiner = ok(&server, &connect_path(tunnel(1))).await;
    assert_eq!(recv(&mut joiner).await, vec![1; 1000]);
    let mut third = ok(&server, &new_path(tunnel(4))).await;
    send(&mut third, &[4; 10]).await;
    synced(&mut third).await;
    let mut joiner = ok(&server, &connect_path(tunnel(4))).await;
    assert_eq!(recv(&mut joiner).await, vec![4; 10]);
}

/// Opens `/cable/new` from a chosen loopback source address; `None` if the relay dropped it.
async fn new_from(server: &tunnel_server::RunningServer, source: [u8; 4], t: u8) -> Option<Ws> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .expect("bind a loopback source address");
    let tcp = socket.connect(server.addr()).await.expect("connect");
    let url = format!("{}{}", server.ws_url(), new_path(tunnel(t)));
    let req = test_support::ws::fido_cable_request(&url, &[]);
    let opened = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp)),
    )
    .await
    .expect("handshake within the bound");
    opened.ok().map(|(ws, _)| ws)
}

/// With `ipv4_client_prefix = 24`, 127.0.0.2 and 127.0.0.3 are one client.
#[tokio::test]
async fn per_client_limit_counts_an_ipv4_slash_24_when_configured() {
    let mut c = config();
    c.limits.max_connections_per_ip = 1;
    let exact = start(c.clone()).await;
    let _a = new_from(&exact, [127, 0, 0, 2], 1).await.expect("admitted");
    let _b = new_from(&exact, [127, 0, 0, 3], 2)
        .await
        .expect("another address is another client by default");
    c.limits.ipv4_client_prefix = 24;
    let by_24 = start(c).await;
    let _a = new_from(&by_24, [127, 0, 0, 2], 1).await.expect("admitted");
    assert!(
        new_from(&by_24, [127, 0, 0, 3], 2).await.is_none(),
        "the same /24 shares one client's limit"
    );
    assert!(
        new_from(&by_24, [127, 0, 1, 3], 3).await.is_some(),
        "another /24 is another client"
    );
}

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

//! Bad input: text frames, unmasked and huge frames, garbage instead of HTTP, clients that
//! never finish the upgrade, connection floods. Each gets a clean rejection or close and does
//! not disturb other tunnels.

use std::time::Duration;

use futures_util::SinkExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test]
async fn text_frame_closes_both_as_unsupported() {
    let server = start(config()).await;
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    desktop.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(closed(&mut desktop).await, CloseCode::Unsupported);
    assert_eq!(closed(&mut phone).await, CloseCode::Unsupported);
}

#[tokio::test]
async fn text_frame_while_waiting_closes() {
    let server = start(config()).await;
    let mut phone = ok(&server, &new_path(tunnel(1))).await;
    phone.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Unsupported);
}

/// Completes a raw upgrade on `/cable/new` and returns the socket.
async fn raw_upgraded(server: &tunnel_server::RunningServer) -> TcpStream {
    raw_upgraded_at(server, &new_path(tunnel(9))).await
}

async fn raw_upgraded_at(server: &tunnel_server::RunningServer, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(&upgrade_request(
        "GET",
        path,
        "Sec-WebSocket-Protocol: fido.cable\r\n",
    ))
    .await
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    tcp
}

/// Reads frames until a close frame; returns its code.
async fn raw_close_code(tcp: &mut TcpStream) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("close within the bound")
            .unwrap_or(0);
        assert!(n > 0, "connection ended without a close frame: {got:?}");
        got.extend_from_slice(&buf[..n]);
        // Server frames are unmasked; a close frame is 0x88, len, code(2), reason.
        if got.len() >= 4 && got[0] == 0x88 {
            return u16::from_be_bytes([got[2], got[3]]);
        }
    }
}

#[tokio::test]
async fn huge_declared_frame_is_refused_without_reading_it() {
    let server = start(config()).await;
    let mut tcp = raw_upgraded(&server).await;
    // Binary frame, masked, 64-bit length 1 GiB, mask key, no payload.
    let mut frame = vec![0x82, 0xff];
    frame.extend_from_slice(&(1u64 << 30).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&frame).await.unwrap();
    assert_eq!(raw_close_code(&mut tcp).await, 1009);
}

#[tokio::test]
async fn unmasked_client_frame_is_a_protocol_error() {
    let server = start(config()).await;
    let mut tcp = raw_upgraded(&server).await;
    tcp.write_all(&[0x82, 0x01, 0x00]).await.unwrap();
    assert_eq!(raw_close_code(&mut tcp).await, 1002);
}

#[tokio::test]
async fn garbage_instead_of_http_is_rejected() {
    let server = start(config()).await;
    let r = raw(&server, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    assert!(r.is_empty() || status_line(&r) == 400, "{r:?}");
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let r = raw(&server, huge_header.as_bytes()).await;
    assert!(
        r.is_empty() || status_line(&r) == 431 || status_line(&r) == 400,
        "{r:?}"
    );
    assert_eq!(status_line(&get(&server, "/healthz").await), 200);
}

#[tokio::test]
async fn slow_clients_are_cut_at_the_upgrade_timeout_without_delaying_others() {
    let mut c = config();
    c.limits.upgrade_timeout = Duration::from_millis(1000);
    let server = start(c).await;
    // One says nothing, one sends half a request line.
    let mut silent = TcpStream::connect(server.addr()).await.unwrap();
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    slow.write_all(b"GET /cable/new/").await.unwrap();
    // Meanwhile a ceremony works.
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut desktop, b"m").await;
    assert_eq!(recv(&mut phone).await, b"m");
    let mut buf = [0u8; 64];
    for tcp in [&mut silent, &mut slow] {
        let r = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)) || buf.starts_with(b"HTTP/1.1 408"));
    }
    assert!(
        metric(
            &server,
            "tunnel_server_rejected_total{reason=\"upgrade_timeout\"}"
        )
        .await
            >= 1
    );
}

#[tokio::test]
async fn connection_flood_is_bounded_and_ceremonies_continue() {
    let mut c = config();
    c.limits.max_connections_per_ip = 100;
    c.limits.upgrade_timeout = Duration::from_millis(1000);
    let server = start(c).await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        if let Ok(tcp) = TcpStream::connect(server.addr()).await {
            flood.push(tcp);
        }
    }
    // The server refused 200 of them at once and holds at most 100.
    await_metric_at_least(&server, 200).await;
    drop(flood);
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut phone, b"still here").await;
    assert_eq!(recv(&mut desktop).await, b"still here");
}

async fn await_metric_at_least(server: &tunnel_server::RunningServer, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // /metrics needs a connection slot of its own; retry until one frees up.
        let text = get(server, "/metrics").await;
        let v = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("tunnel_server_rejected_total{reason=\"per_ip_limit\"} ")?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        if v >= want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "per-IP rejections {v} < {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_peer_that_never_reads_cannot_hold_the_tunnel() {
    let mut c = config();
    c.limits.messages_per_side = 1_000_000;
    c.limits.max_message_size = 64 * 1024;
    c.limits.idle_timeout = Duration::from_millis(300);
    let server = start(c).await;
    let t = tunnel(1);
    // The phone never reads: its receive window fills, and the relay's sends to it stall.
    let _phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    let pump = tokio::spawn(async move {
        for _ in 0..400 {
            if desktop
                .send(Message::Binary(vec![0; 64 * 1024]))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    await_metric(&server, "tunnel_server_closes_total{reason=\"idle\"}", 1).await;
    await_metric(&server, "tunnel_server_tunnels_open", 0).await;
    pump.abort();
}

#[tokio::test]
async fn a_half_sent_frame_does_not_keep_a_tunnel_alive() {
    let mut c = config();
    c.limits.idle_timeout = Duration::from_millis(300);
    let server = start(c).await;
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = raw_upgraded_at(&server, &connect_path(t)).await;
    // A masked binary frame announcing 100 bytes, of which only 3 arrive; then silence.
    desktop
        .write_all(&[0x82, 0x80 | 100, 1, 2, 3, 4, 9, 9, 9])
        .await
        .unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Policy);
    assert_eq!(raw_close_code(&mut desktop).await, 1008);
}

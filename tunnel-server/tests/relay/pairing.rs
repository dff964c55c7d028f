//! Pairing, relaying both ways, queued early messages, close propagation.

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::support::*;

#[tokio::test]
async fn pairs_and_relays_both_ways_with_headers() {
    let server = start(config()).await;
    let t = tunnel(1);
    let (mut phone, resp) = open(&server, &new_path(t), &[]).await.unwrap();
    assert_eq!(resp.headers()["X-caBLE-Routing-ID"], "0A0B0C");
    assert_eq!(resp.headers()["Sec-WebSocket-Protocol"], "fido.cable");
    let (mut desktop, resp) = open(&server, &connect_path(t), &[]).await.unwrap();
    assert_eq!(resp.headers()["Sec-WebSocket-Protocol"], "fido.cable");
    for i in 0..5u8 {
        send(&mut desktop, &[i; 81]).await;
        assert_eq!(recv(&mut phone).await, vec![i; 81]);
        send(&mut phone, &[i, 1, 2]).await;
        assert_eq!(recv(&mut desktop).await, vec![i, 1, 2]);
    }
    desktop.close(None).await.unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Normal);
    await_metric(&server, "tunnel_server_ceremonies_completed_total", 1).await;
    await_metric(&server, "tunnel_server_tunnels_open", 0).await;
}

#[tokio::test]
async fn the_task_gauge_counts_a_ceremony_and_comes_back_to_idle() {
    let server = start(config()).await;
    let mut idle = u64::MAX;
    for _ in 0..3 {
        idle = idle.min(
            try_metric(&server, "tunnel_server_tasks")
                .await
                .expect("served"),
        );
    }
    let t = tunnel(2);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut desktop, b"x").await;
    assert_eq!(recv(&mut phone).await, b"x");
    let busy = try_metric(&server, "tunnel_server_tasks")
        .await
        .expect("served");
    assert!(
        busy > idle,
        "a paired tunnel holds a task: {busy} against {idle} idle"
    );
    desktop.close(None).await.unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Normal);
    await_metric(&server, "tunnel_server_tunnels_open", 0).await;
    await_metric(&server, "tunnel_server_tasks", idle).await;
}

#[tokio::test]
async fn lower_case_paths_pair() {
    let server = start(config()).await;
    let t = tunnel(0xab);
    let mut phone = ok(&server, &new_path(t).to_lowercase()).await;
    let mut desktop = ok(&server, &connect_path(t).to_lowercase()).await;
    send(&mut phone, b"x").await;
    assert_eq!(recv(&mut desktop).await, b"x");
}

#[tokio::test]
async fn early_messages_are_queued_in_order() {
    let server = start(config()).await;
    let t = tunnel(2);
    let mut phone = ok(&server, &new_path(t)).await;
    for i in 0..5u8 {
        send(&mut phone, &[i]).await;
    }
    // (That the relay reads and queues them while waiting, rather than leaving them in the
    // socket, is what `limits::queue_limit_closes_waiting_side` shows.)
    await_metric(&server, "tunnel_server_relayed_messages_total", 0).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut desktop, b"after").await;
    for i in 0..5u8 {
        assert_eq!(recv(&mut desktop).await, vec![i]);
    }
    assert_eq!(recv(&mut phone).await, b"after");
}

#[tokio::test]
async fn connect_with_another_routing_id_still_pairs_by_tunnel_id() {
    let server = start(config()).await;
    let t = tunnel(3);
    let mut phone = ok(&server, &new_path(t)).await;
    let path = hybrid_protocol::tunnel::TunnelPath::Connect(
        hybrid_protocol::tunnel::RoutingId([9, 9, 9]),
        t,
    )
    .to_path();
    let mut desktop = ok(&server, &path).await;
    send(&mut desktop, b"hi").await;
    assert_eq!(recv(&mut phone).await, b"hi");
}

#[tokio::test]
async fn close_propagates_from_phone_with_application_code() {
    let server = start(config()).await;
    let t = tunnel(4);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    phone
        .close(Some(CloseFrame {
            code: CloseCode::from(4001),
            reason: "done".into(),
        }))
        .await
        .unwrap();
    assert_eq!(closed(&mut desktop).await, CloseCode::from(4001));
}

#[tokio::test]
async fn abrupt_disconnect_closes_peer_going_away() {
    let server = start(config()).await;
    let t = tunnel(5);
    let phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    drop(phone);
    assert_eq!(closed(&mut desktop).await, CloseCode::Away);
}

#[tokio::test]
async fn tunnel_id_is_reusable_after_close() {
    let server = start(config()).await;
    let t = tunnel(6);
    let mut phone = ok(&server, &new_path(t)).await;
    phone.close(None).await.unwrap();
    let _ = closed(&mut phone).await;
    await_metric(&server, "tunnel_server_tunnels_open", 0).await;
    let _phone = ok(&server, &new_path(t)).await;
}

/// Generous enough for a loaded 2-core machine, and well under the relay's 1 s close timeout,
/// which a close that waits on the other side's acknowledgement runs into.
const PROMPT_CLOSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Reads `ws` to its end (the server closing TCP); returns the close frame's code, if any.
async fn read_to_end(ws: &mut Ws) -> Option<CloseCode> {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let mut code = None;
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the socket ends within the bound");
        match m {
            Some(Ok(Message::Close(f))) => code = Some(f.map_or(CloseCode::Status, |f| f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return code,
        }
    }
}

/// A client that reads its sockets one at a time (close one side and read it to its end, then
/// read the other) sees both close handshakes finish at once: the relay completes each side's
/// handshake and closes its TCP connection on its own (RFC 6455 §5.5.1, §7.1.1), never
/// waiting for the other side's acknowledgement. Both orders: the desktop closing first, and
/// the phone.
#[tokio::test]
async fn sequential_reader_sees_both_closes_complete_promptly() {
    let server = start(config()).await;
    for (n, desktop_closes) in [(10u8, true), (11, false)] {
        let t = tunnel(n);
        let mut phone = ok(&server, &new_path(t)).await;
        let mut desktop = ok(&server, &connect_path(t)).await;
        send(&mut desktop, b"request").await;
        assert_eq!(recv(&mut phone).await, b"request");
        send(&mut phone, b"response").await;
        assert_eq!(recv(&mut desktop).await, b"response");
        let (initiator, other) = if desktop_closes {
            (&mut desktop, &mut phone)
        } else {
            (&mut phone, &mut desktop)
        };

        let started = std::time::Instant::now();
        initiator
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await
            .unwrap();
        assert_eq!(read_to_end(initiator).await, Some(CloseCode::Normal));
        let initiator_done = started.elapsed();
        assert_eq!(read_to_end(other).await, Some(CloseCode::Normal));
        let other_done = started.elapsed() - initiator_done;

        assert!(
            initiator_done < PROMPT_CLOSE,
            "desktop closes first: {desktop_closes}; the initiator's close took {initiator_done:?}"
        );
        assert!(
            other_done < PROMPT_CLOSE,
            "desktop closes first: {desktop_closes}; the other side's close took {other_done:?}"
        );
    }
    await_metric(&server, "tunnel_server_tunnels_open", 0).await;
    await_metric(&server, "tunnel_server_ceremonies_completed_total", 2).await;
}

/// A paired tunnel that has been silent for over a second waits as two bare connections
/// (the relay drops their WebSocket buffers); whichever side speaks next, with a ping, a
/// message longer than the relay's first read, or a close, is served as if it had never gone
/// quiet.
#[tokio::test]
async fn a_tunnel_quiet_for_seconds_relays_pings_messages_and_closes() {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let quiet = std::time::Duration::from_millis(1300);
    let server = start(config()).await;
    let t = tunnel(0x51);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    send(&mut desktop, &[1; 81]).await;
    assert_eq!(recv(&mut phone).await, vec![1; 81]);
    tokio::time::sleep(quiet).await;
    // The phone speaks first after the quiet: a ping (answered by the relay), then a message.
    phone.send(Message::Ping(vec![7; 4])).await.unwrap();
    send(&mut phone, &[2; 2000]).await;
    assert_eq!(recv(&mut desktop).await, vec![2; 2000]);
    send(&mut desktop, &[3; 300]).await;
    assert_eq!(recv(&mut phone).await, vec![3; 300]);
    tokio::time::sleep(quiet).await;
    // Now the desktop, with several messages at once.
    for i in 0..20u8 {
        send(&mut desktop, &[i; 1000]).await;
    }
    for i in 0..20u8 {
        assert_eq!(recv(&mut phone).await, vec![i; 1000]);
    }
    tokio::time::sleep(quiet).await;
    desktop.close(None).await.unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Normal);
    await_metric(&server, "tunnel_server_relayed_messages_total", 23).await;
    await_metric(&server, "tunnel_server_ceremonies_completed_total", 1).await;
}

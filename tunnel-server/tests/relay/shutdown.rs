//! Graceful shutdown: live tunnels keep relaying during the grace period, then get 1001;
//! a shutdown with nothing live (or everything finished) returns at once; while draining,
//! anything new gets 503 but a waiting tunnel can still be joined, and `/readyz` (on the main
//! and the metrics listener) says so while `/healthz` still answers.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tunnel_server::Config;

use crate::support::*;

#[tokio::test]
async fn live_tunnel_relays_during_grace_then_closes_going_away() {
    let mut c = config();
    c.limits.shutdown_grace = Duration::from_millis(2000);
    let server = start(c).await;
    let addr = server.addr();
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    let (mut reg, _) = open(&server, "/cable/register", &[]).await.unwrap();
    let stopping = tokio::spawn(server.shutdown());
    // Registrations close at once with going-away; phones reconnect elsewhere.
    assert_eq!(closed(&mut reg).await, CloseCode::Away);
    // The live tunnel still relays.
    send(&mut desktop, b"during grace").await;
    assert_eq!(recv(&mut phone).await, b"during grace");
    // Nothing new: the listener answers, with 503.
    let url = format!("ws://{addr}{}", new_path(tunnel(2)));
    assert_eq!(status(open_url(&url, &[]).await), 503);
    assert_eq!(closed(&mut phone).await, CloseCode::Away);
    assert_eq!(closed(&mut desktop).await, CloseCode::Away);
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown finishes")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_returns_as_soon_as_tunnels_finish() {
    let mut c = config();
    c.limits.shutdown_grace = Duration::from_secs(60);
    let server = start(c).await;
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    let stopping = tokio::spawn(server.shutdown());
    send(&mut phone, b"last").await;
    assert_eq!(recv(&mut desktop).await, b"last");
    desktop.close(None).await.unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Normal);
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown well before the 60 s grace")
        .unwrap()
        .unwrap();
}

/// A load balancer probing `/readyz` stops sending new ceremonies once a drain begins, while
/// `/healthz` stays 200 (the process is fine; restarting it would cut the live tunnels). The
/// public listener stops accepting at once, so the probes that see the drain are the metrics
/// listener's, which serves until the relay has stopped.
#[tokio::test]
async fn draining_relay_is_not_ready_but_healthy_on_the_metrics_listener() {
    let mut c = Config {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..config()
    };
    c.limits.shutdown_grace = Duration::from_secs(60);
    let server = start(c).await;
    let probes = server.metrics_addr().expect("a metrics listener");
    assert_eq!(
        status_line(&request_at(probes, "GET", "/readyz").await),
        200
    );
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let mut desktop = ok(&server, &connect_path(t)).await;
    let stopping = tokio::spawn(server.shutdown());

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ready = request_at(probes, "GET", "/readyz").await;
        if status_line(&ready) == 503 {
            assert!(ready.ends_with("shutting down\n"), "{ready}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let head = request_at(probes, "HEAD", "/readyz").await;
    assert_eq!(status_line(&head), 503, "{head}");
    let health = request_at(probes, "GET", "/healthz").await;
    assert_eq!(status_line(&health), 200, "{health}");
    let metrics = request_at(probes, "GET", "/metrics").await;
    assert!(
        metrics.contains("tunnel_server_tunnels_paired 1\n"),
        "{metrics}"
    );

    // The live tunnel still relays, then finishes; the shutdown follows well before the
    // 60 s grace, and takes the metrics listener with it.
    send(&mut desktop, b"during the drain").await;
    assert_eq!(recv(&mut phone).await, b"during the drain");
    desktop.close(None).await.unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Normal);
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown once the tunnel is done")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(probes).await.is_err());
}

/// A phone that opened `/cable/new` just before the drain began has put this instance's
/// routing ID in its advert: its desktop must still be able to join, or the ceremony is lost
/// in a rolling update. Everything that would start something new gets 503 (a proxy tries
/// another instance), and the shutdown ends once the joined tunnel is done.
#[tokio::test]
async fn draining_relay_lets_a_waiting_tunnel_be_joined_and_refuses_anything_new() {
    let mut c = config();
    c.limits.shutdown_grace = Duration::from_secs(60);
    let server = start(c).await;
    let addr = server.addr();
    let t = tunnel(1);
    let mut phone = ok(&server, &new_path(t)).await;
    let (mut reg, resp) = open(&server, "/cable/register", &[]).await.unwrap();
    let contact = format!(
        "/cable/contact/{}",
        resp.headers()["X-caBLE-Contact-ID"].to_str().unwrap()
    );
    let stopping = tokio::spawn(server.shutdown());
    // The drain has begun once registrations are closed.
    assert_eq!(closed(&mut reg).await, CloseCode::Away);

    let at = |path: &str| format!("ws://{addr}{path}");
    match open_url(&at(&new_path(tunnel(2))), &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            assert_eq!(resp.headers()["Retry-After"], "1", "clients wait this long");
        }
        other => panic!("a new tunnel while draining: {:?}", other.map(|o| o.1)),
    }
    assert_eq!(status(open_url(&at("/cable/register"), &[]).await), 503);
    let payload = [("X-caBLE-Client-Payload", "A1")];
    assert_eq!(status(open_url(&at(&contact), &payload).await), 503);
    // An unknown tunnel is still a 404, not a 503: the proxy must not retry a join elsewhere.
    assert_eq!(
        status(open_url(&at(&connect_path(tunnel(3))), &[]).await),
        404
    );
    let ready = request_at(addr, "GET", "/readyz").await;
    assert_eq!(status_line(&ready), 503, "{ready}");
    assert!(ready.ends_with("shutting down\n"), "{ready}");
    assert_eq!(status_line(&request_at(addr, "GET", "/healthz").await), 200);

    // The desktop joins the waiting tunnel and the ceremony completes.
    let mut desktop = open_url(&at(&connect_path(t)), &[])
        .await
        .expect("joined")
        .0;
    send(&mut desktop, b"msg1").await;
    assert_eq!(recv(&mut phone).await, b"msg1");
    send(&mut phone, b"msg2").await;
    assert_eq!(recv(&mut desktop).await, b"msg2");
    desktop.close(None).await.unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Normal);
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown once the joined tunnel is done, well before the 60 s grace")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

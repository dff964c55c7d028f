//! Graceful shutdown: live tunnels keep relaying during the grace period, then get 1001;
//! a shutdown with nothing live (or everything finished) returns at once.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

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
    // No new connections.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
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

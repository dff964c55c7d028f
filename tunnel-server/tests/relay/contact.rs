//! The contact channel (README "Contact channel"): registration, wake-up, pairing through
//! `/cable/connect`, the signal message, 410 for unknown and revoked contact IDs, resume and
//! pending wake-ups, replacement.

use futures_util::SinkExt as _;
use hybrid_protocol::tunnel::{ContactId, RoutingId, TunnelId, TunnelPath};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const PAYLOAD: &str = "A301480102030405060708025010";

async fn register(server: &tunnel_server::RunningServer) -> (Ws, ContactId) {
    let (ws, resp) = open(server, "/cable/register", &[]).await.unwrap();
    assert_eq!(resp.headers()["Sec-WebSocket-Protocol"], "fido.cable");
    let id = resp.headers()["X-caBLE-Contact-ID"].to_str().unwrap();
    (ws, ContactId::from_base64url(id).unwrap())
}

fn contact_path(id: &ContactId) -> String {
    TunnelPath::Contact(id.clone()).to_path()
}

/// Reads a wake-up: (tunnel ID, routing ID, client payload).
async fn wake_up(phone: &mut Ws) -> (TunnelId, RoutingId, String) {
    let v: serde_json::Value = serde_json::from_slice(&recv(phone).await).unwrap();
    (
        TunnelId::from_hex(v["tunnel_id"].as_str().unwrap()).unwrap(),
        RoutingId::from_hex(v["routing_id"].as_str().unwrap()).unwrap(),
        v["client_payload"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn contact_ids_carry_the_routing_id_and_128_random_bits() {
    let server = start(config()).await;
    let (_p1, a) = register(&server).await;
    let (_p2, b) = register(&server).await;
    assert_eq!(a.0.len(), 19);
    assert_eq!(&a.0[..3], &ROUTING.0);
    assert_ne!(a, b);
    // The first 4 base64url characters encode exactly the routing ID.
    assert_eq!(&a.to_base64url()[..4], "CgsM");
}

#[tokio::test]
async fn wake_up_pairs_and_relays_with_early_messages_queued() {
    let server = start(config()).await;
    let (mut reg, id) = register(&server).await;
    let (mut client, resp) = open(
        &server,
        &contact_path(&id),
        &[("X-caBLE-Client-Payload", PAYLOAD)],
    )
    .await
    .unwrap();
    assert!(resp.headers().get("X-caBLE-Signal-Connection").is_none());
    send(&mut client, b"msg1").await;
    let (t, r, payload) = wake_up(&mut reg).await;
    assert_eq!(r, ROUTING);
    assert_eq!(payload, PAYLOAD);
    let mut phone = ok(&server, &TunnelPath::Connect(r, t).to_path()).await;
    assert_eq!(recv(&mut phone).await, b"msg1");
    send(&mut phone, b"msg2").await;
    assert_eq!(recv(&mut client).await, b"msg2");
    client.close(None).await.unwrap();
    assert_eq!(closed(&mut phone).await, CloseCode::Normal);
}

#[tokio::test]
async fn signal_connection_injects_zero_before_relayed_messages() {
    let server = start(config()).await;
    let (mut reg, id) = register(&server).await;
    let (mut client, resp) = open(
        &server,
        &contact_path(&id),
        &[
            ("X-caBLE-Client-Payload", PAYLOAD),
            ("X-caBLE-Signal-Connection", "true"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(resp.headers()["X-caBLE-Signal-Connection"], "true");
    let (t, r, _) = wake_up(&mut reg).await;
    let mut phone = ok(&server, &TunnelPath::Connect(r, t).to_path()).await;
    send(&mut phone, b"msg2").await;
    assert_eq!(recv(&mut client).await, vec![0]);
    assert_eq!(recv(&mut client).await, b"msg2");
}

#[tokio::test]
async fn unknown_or_foreign_contact_ids_are_410_and_payload_is_required() {
    let server = start(config()).await;
    let h = [("X-caBLE-Client-Payload", PAYLOAD)];
    let mut unknown = ROUTING.0.to_vec();
    unknown.extend_from_slice(&[7; 16]);
    assert_eq!(
        status(open(&server, &contact_path(&ContactId(unknown)), &h).await),
        410
    );
    assert_eq!(
        status(open(&server, &contact_path(&ContactId(vec![1, 2, 3])), &h).await),
        410
    );
    let (_reg, id) = register(&server).await;
    let mut foreign = id.clone();
    foreign.0[0] ^= 0xff;
    assert_eq!(
        status(open(&server, &contact_path(&foreign), &h).await),
        410
    );
    assert_eq!(status(open(&server, &contact_path(&id), &[]).await), 400);
    let bad = [("X-caBLE-Client-Payload", "not hex")];
    assert_eq!(status(open(&server, &contact_path(&id), &bad).await), 400);
    let resume = format!("/cable/register/{}", foreign.to_base64url());
    assert_eq!(status(open(&server, &resume, &[]).await), 410);
}

#[tokio::test]
async fn revoke_makes_contact_and_resume_410() {
    let server = start(config()).await;
    let (mut reg, id) = register(&server).await;
    reg.send(Message::Binary(br#"{"revoke":true}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(closed(&mut reg).await, CloseCode::Normal);
    let h = [("X-caBLE-Client-Payload", PAYLOAD)];
    assert_eq!(status(open(&server, &contact_path(&id), &h).await), 410);
    let resume = format!("/cable/register/{}", id.to_base64url());
    assert_eq!(status(open(&server, &resume, &[]).await), 410);
}

#[tokio::test]
async fn wake_up_waits_for_the_phone_to_resume() {
    let server = start(config()).await;
    let (mut reg, id) = register(&server).await;
    reg.close(None).await.unwrap();
    let _ = closed(&mut reg).await;
    await_metric(&server, "tunnel_server_registrations_connected", 0).await;
    let mut client = open(
        &server,
        &contact_path(&id),
        &[("X-caBLE-Client-Payload", PAYLOAD)],
    )
    .await
    .unwrap()
    .0;
    let (mut reg, resp) = open(
        &server,
        &format!("/cable/register/{}", id.to_base64url()),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        resp.headers()["X-caBLE-Contact-ID"],
        id.to_base64url().as_str()
    );
    let (t, r, payload) = wake_up(&mut reg).await;
    assert_eq!(payload, PAYLOAD);
    let mut phone = ok(&server, &TunnelPath::Connect(r, t).to_path()).await;
    send(&mut client, b"hello").await;
    assert_eq!(recv(&mut phone).await, b"hello");
}

#[tokio::test]
async fn a_newer_registration_replaces_the_older() {
    let server = start(config()).await;
    let (mut old, id) = register(&server).await;
    let resume = format!("/cable/register/{}", id.to_base64url());
    let (mut new, _) = open(&server, &resume, &[]).await.unwrap();
    assert_eq!(closed(&mut old).await, CloseCode::Normal);
    let _client = open(
        &server,
        &contact_path(&id),
        &[("X-caBLE-Client-Payload", PAYLOAD)],
    )
    .await
    .unwrap();
    let (_, _, payload) = wake_up(&mut new).await;
    assert_eq!(payload, PAYLOAD);
}

#[tokio::test]
async fn text_on_registration_socket_is_refused() {
    let server = start(config()).await;
    let (mut reg, _) = register(&server).await;
    reg.send(Message::Text("{}".into())).await.unwrap();
    assert_eq!(closed(&mut reg).await, CloseCode::Unsupported);
}

#[tokio::test]
async fn registration_pings_keep_a_reading_phone_and_close_a_silent_one() {
    let mut c = config();
    c.limits.registration_ping_interval = std::time::Duration::from_millis(200);
    let server = start(c).await;
    // A phone that reads answers pings (tungstenite does it) and stays registered.
    let (mut alive, _) = register(&server).await;
    let mut pings = 0;
    while pings < 5 {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut alive)).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            other => panic!("expected pings, got {other:?}"),
        }
    }
    // Keep reading (and so answering) in the background.
    let reader = tokio::spawn(async move {
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut alive).await {}
    });
    // A phone that never reads never answers: closed as going away after two intervals.
    let (mut silent, _) = register(&server).await;
    await_metric(&server, "tunnel_server_closes_total{reason=\"idle\"}", 1).await;
    assert_eq!(closed(&mut silent).await, CloseCode::Away);
    assert_eq!(
        metric(&server, "tunnel_server_registrations_connected").await,
        1,
        "the reading phone is still registered"
    );
    reader.abort();
}

#[tokio::test]
async fn contact_store_keeps_contact_ids_across_restarts_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("contacts");
    let with_store = || tunnel_server::Config {
        contact_store: Some(store.clone()),
        ..config()
    };
    let server = start(with_store()).await;
    let (reg, id) = register(&server).await;
    let (_other, kept) = register(&server).await;
    drop(reg);
    server.shutdown().await.unwrap();

    // A new process with the same store and routing ID knows both contact IDs.
    let server = start(with_store()).await;
    let resume = |id: &ContactId| format!("/cable/register/{}", id.to_base64url());
    let (mut reg, _) = open(&server, &resume(&id), &[]).await.unwrap();
    reg.send(Message::Binary(br#"{"revoke":true}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(closed(&mut reg).await, CloseCode::Normal);
    server.shutdown().await.unwrap();

    // The revocation survives the next restart; the other contact ID is still there.
    let server = start(with_store()).await;
    assert_eq!(status(open(&server, &resume(&id), &[]).await), 410);
    let (mut reg, _) = open(&server, &resume(&kept), &[]).await.unwrap();
    let mut client = open(
        &server,
        &contact_path(&kept),
        &[("X-caBLE-Client-Payload", PAYLOAD)],
    )
    .await
    .unwrap()
    .0;
    let (t, r, _) = wake_up(&mut reg).await;
    let mut phone = ok(&server, &TunnelPath::Connect(r, t).to_path()).await;
    send(&mut client, b"after restart").await;
    assert_eq!(recv(&mut phone).await, b"after restart");
}

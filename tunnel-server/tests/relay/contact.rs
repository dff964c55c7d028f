//! The contact channel (README "Contact channel"): registration, wake-up, pairing through
//! `/cable/connect`, the signal message, 410 for unknown and revoked contact IDs, resume and
//! pending wake-ups, replacement, and the phone-only registration secret (resume and revoke
//! need it; legacy contact IDs from an old store do not).

use futures_util::SinkExt as _;
use hybrid_protocol::contact::RegistrationSecret;
use hybrid_protocol::tunnel::{ContactId, RoutingId, TunnelId, TunnelPath};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const PAYLOAD: &str = "A301480102030405060708025010";

async fn register(server: &tunnel_server::RunningServer) -> (Ws, ContactId) {
    let (ws, id, _) = register_with_secret(server).await;
    (ws, id)
}

/// Resumes once with the secret, as a phone does before handing its contact ID out: this
/// confirms the ID, which is then kept (and stored) for the full expiry.
async fn confirm(server: &tunnel_server::RunningServer, id: &ContactId, secret: &str) {
    let (ws, _) = open(server, &resume_path(id), &[(SECRET_HEADER, secret)])
        .await
        .expect("the phone resumes");
    drop(ws);
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
    let (mut reg, id, secret) = register_with_secret(&server).await;
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
        &resume_path(&id),
        &[(SECRET_HEADER, secret.as_str())],
    )
    .await
    .unwrap();
    assert!(
        resp.headers().get(SECRET_HEADER).is_none(),
        "a resume is not sent the secret again"
    );
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
    let (mut old, id, secret) = register_with_secret(&server).await;
    let (mut new, _) = open(
        &server,
        &resume_path(&id),
        &[(SECRET_HEADER, secret.as_str())],
    )
    .await
    .unwrap();
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
    let (reg, id, secret) = register_with_secret(&server).await;
    let (_other, kept, kept_secret) = register_with_secret(&server).await;
    drop(reg);
    confirm(&server, &id, &secret).await;
    confirm(&server, &kept, &kept_secret).await;
    server.shutdown().await.unwrap();

    // A new process with the same store and routing ID knows both contact IDs, and still
    // wants their secrets (they are derived, not stored).
    let server = start(with_store()).await;
    let resume = |id: &ContactId| resume_path(id);
    assert_eq!(status(open(&server, &resume(&id), &[]).await), 403);
    let (mut reg, _) = open(&server, &resume(&id), &[(SECRET_HEADER, secret.as_str())])
        .await
        .unwrap();
    reg.send(Message::Binary(br#"{"revoke":true}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(closed(&mut reg).await, CloseCode::Normal);
    server.shutdown().await.unwrap();

    // The revocation survives the next restart; the other contact ID is still there.
    let server = start(with_store()).await;
    assert_eq!(
        status(open(&server, &resume(&id), &[(SECRET_HEADER, secret.as_str())]).await),
        410
    );
    let (mut reg, _) = open(
        &server,
        &resume(&kept),
        &[(SECRET_HEADER, kept_secret.as_str())],
    )
    .await
    .unwrap();
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

/// A desktop learns the contact ID by linking, but holding it is not enough to take over the phone's registration socket (stealing its wake-ups) or to revoke
/// it (the revoke message is sent on a resumed socket): without the phone's secret, or with
/// anyone else's, resume is 403 and the phone keeps getting its wake-ups.
#[tokio::test]
async fn a_desktop_holding_only_the_contact_id_cannot_resume_or_revoke() {
    let server = start(config()).await;
    let (mut phone_reg, id, secret) = register_with_secret(&server).await;
    let (_other, _, other_secret) = register_with_secret(&server).await;
    let mut wrong = secret.clone().into_bytes();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    for headers in [
        vec![],
        vec![(SECRET_HEADER, other_secret.as_str())],
        vec![(SECRET_HEADER, wrong.as_str())],
        vec![(SECRET_HEADER, "not base64!")],
        vec![(SECRET_HEADER, id.to_base64url().as_str())],
    ] {
        match open(&server, &resume_path(&id), &headers).await {
            Ok((mut stolen, _)) => {
                // A relay that let this through: the desktop holds the registration; show what it could do.
                stolen
                    .send(Message::Binary(br#"{"revoke":true}"#.to_vec()))
                    .await
                    .unwrap();
                panic!("a resume with {headers:?} took over the phone's registration");
            }
            Err(e) => assert_eq!(status(Err(e)), 403, "resume with {headers:?}"),
        }
    }
    assert_eq!(
        metric(
            &server,
            "tunnel_server_rejected_total{reason=\"registration_secret\"}"
        )
        .await,
        5
    );
    // The phone's own socket was neither replaced nor revoked: it still gets wake-ups.
    let _client = open(
        &server,
        &contact_path(&id),
        &[("X-caBLE-Client-Payload", PAYLOAD)],
    )
    .await
    .unwrap();
    let (_, _, payload) = wake_up(&mut phone_reg).await;
    assert_eq!(payload, PAYLOAD);
}

/// The phone's secret owns its contact ID (the ID's random bytes are derived from it), and
/// with it the phone resumes and revokes.
#[tokio::test]
async fn the_phone_with_its_secret_resumes_and_revokes() {
    let server = start(config()).await;
    let (mut old, id, secret) = register_with_secret(&server).await;
    let parsed = RegistrationSecret::from_base64url(&secret).unwrap();
    assert_eq!(&id.0[3..], &parsed.contact_key()[..]);
    let (mut reg, resp) = open(
        &server,
        &resume_path(&id),
        &[(SECRET_HEADER, secret.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(
        resp.headers()["X-caBLE-Contact-ID"],
        id.to_base64url().as_str()
    );
    assert_eq!(closed(&mut old).await, CloseCode::Normal);
    reg.send(Message::Binary(br#"{"revoke":true}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(closed(&mut reg).await, CloseCode::Normal);
    let h = [("X-caBLE-Client-Payload", PAYLOAD)];
    assert_eq!(status(open(&server, &contact_path(&id), &h).await), 410);
    assert_eq!(
        status(
            open(
                &server,
                &resume_path(&id),
                &[(SECRET_HEADER, secret.as_str())]
            )
            .await
        ),
        410
    );
}

/// Migration: a store without registration secrets (`+<hex>` lines) is restored as legacy
/// contact IDs that resume (and so could be revoked) without a secret, so phones registered
/// there keep working; contact IDs minted with a secret need it after a restart.
#[tokio::test]
async fn a_legacy_contact_from_a_store_without_secrets_resumes_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("contacts");
    let legacy_key = [0x42u8; 16];
    std::fs::write(&store, format!("+{}\n", hex::encode(legacy_key))).unwrap();
    let with_store = || tunnel_server::Config {
        contact_store: Some(store.clone()),
        ..config()
    };
    let server = start(with_store()).await;
    let mut legacy = ROUTING.0.to_vec();
    legacy.extend_from_slice(&legacy_key);
    let legacy = ContactId(legacy);
    let (mut reg, _) = open(&server, &resume_path(&legacy), &[]).await.unwrap();
    let mut client = open(
        &server,
        &contact_path(&legacy),
        &[("X-caBLE-Client-Payload", PAYLOAD)],
    )
    .await
    .unwrap()
    .0;
    let (t, r, _) = wake_up(&mut reg).await;
    let mut phone = ok(&server, &TunnelPath::Connect(r, t).to_path()).await;
    send(&mut client, b"legacy").await;
    assert_eq!(recv(&mut phone).await, b"legacy");
    let (_new_reg, new_id, new_secret) = register_with_secret(&server).await;
    confirm(&server, &new_id, &new_secret).await;
    drop(reg);
    server.shutdown().await.unwrap();

    let server = start(with_store()).await;
    let (_reg, _) = open(&server, &resume_path(&legacy), &[]).await.unwrap();
    assert_eq!(status(open(&server, &resume_path(&new_id), &[]).await), 403);
    let (_reg2, _) = open(
        &server,
        &resume_path(&new_id),
        &[(SECRET_HEADER, new_secret.as_str())],
    )
    .await
    .unwrap();
}

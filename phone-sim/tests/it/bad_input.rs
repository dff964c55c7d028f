//! Bad input ends the session with a clear error — a CTAP status where the protocol has one —
//! never a panic, and never touches stored credentials.

use hybrid_protocol::ctap::Status;
use hybrid_protocol::error::{Malformed, PeerMisbehaved};
use hybrid_protocol::session::Message;
use phone_sim::{Phone, PhoneError};

use crate::harness::*;

fn protocol_error(r: Result<phone_sim::Outcome, PhoneError>) -> hybrid_protocol::Error {
    match r {
        Err(PhoneError::Protocol { error, .. }) => error,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// Runs a session where the desktop alters msg1.
async fn altered_msg1(alter: fn(Vec<u8>) -> Vec<u8>) -> hybrid_protocol::Error {
    let relay = relay().await;
    let f = files();
    let phone = Phone::open(&f.store, config(&relay.ws_url())).unwrap();
    let before = std::fs::read(&f.store).unwrap();
    let desktop = Desktop::new(false);
    let task = spawn_qr(phone, desktop.qr.clone(), f.adverts.clone());
    let (mut ws, _) = desktop.start(&relay.ws_url(), &f.adverts, alter).await;
    assert!(recv(&mut ws).await.is_none(), "no msg2");
    let (_, r) = join(task).await;
    assert_eq!(std::fs::read(&f.store).unwrap(), before);
    protocol_error(r)
}

#[tokio::test]
async fn handshake_message_of_the_wrong_size() {
    let e = altered_msg1(|mut m| {
        m.pop();
        m
    })
    .await;
    assert_eq!(
        e,
        Malformed::HandshakeLength {
            expected: 81,
            got: 80
        }
        .into()
    );
    let e = altered_msg1(|mut m| {
        m.push(0);
        m
    })
    .await;
    assert_eq!(
        e,
        Malformed::HandshakeLength {
            expected: 81,
            got: 82
        }
        .into()
    );
}

#[tokio::test]
async fn handshake_message_with_a_bad_tag() {
    let e = altered_msg1(|mut m| {
        m[80] ^= 1;
        m
    })
    .await;
    assert_eq!(e, PeerMisbehaved::HandshakeAuthentication.into());
}

/// Opens a session and lets `script` misbehave; returns the phone's result.
async fn session_with(
    script: impl AsyncFnOnce(&mut Channel),
) -> (Result<phone_sim::Outcome, PhoneError>, Files) {
    let relay = relay().await;
    let f = files();
    let phone = Phone::open(&f.store, config(&relay.ws_url())).unwrap();
    let desktop = Desktop::new(false);
    let task = spawn_qr(phone, desktop.qr.clone(), f.adverts.clone());
    let mut ch = desktop.open(&relay.ws_url(), &f.adverts).await;
    script(&mut ch).await;
    let (_, r) = join(task).await;
    (r, f)
}

#[tokio::test]
async fn unknown_message_type() {
    let (r, _) = session_with(async |ch| {
        ch.send_raw_plaintext(&[0x07, 1, 2]).await;
        assert!(recv(&mut ch.ws).await.is_none());
    })
    .await;
    assert_eq!(
        protocol_error(r),
        PeerMisbehaved::UnknownMessageType(7).into()
    );
}

#[tokio::test]
async fn garbage_frame() {
    let (r, _) = session_with(async |ch| {
        use futures_util::SinkExt as _;
        ch.ws
            .send(tokio_tungstenite::tungstenite::Message::Binary(vec![
                0x55;
                48
            ]))
            .await
            .unwrap();
        assert!(recv(&mut ch.ws).await.is_none());
    })
    .await;
    assert_eq!(
        protocol_error(r),
        PeerMisbehaved::FrameAuthentication.into()
    );
}

#[tokio::test]
async fn text_frame() {
    let (r, _) = session_with(async |ch| {
        use futures_util::SinkExt as _;
        ch.ws
            .send(tokio_tungstenite::tungstenite::Message::Text(
                "hello".into(),
            ))
            .await
            .unwrap();
        assert!(recv(&mut ch.ws).await.is_none());
    })
    .await;
    let e = r.unwrap_err();
    // The relay refuses text frames and closes the tunnel itself (1003): the phone says so.
    assert!(
        matches!(
            &e,
            PhoneError::Relay {
                error: tunnel_client::RelayError::ClosedByRelay { code: 1003, .. },
                ..
            }
        ),
        "{e:?}"
    );
}

fn bad_request(r: Result<phone_sim::Outcome, PhoneError>, expected: Status) {
    match r {
        Err(PhoneError::BadRequest {
            status, replied, ..
        }) => {
            assert_eq!(status, expected);
            assert!(replied);
        }
        other => panic!("expected BadRequest {expected:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn non_canonical_ctap() {
    let mut body = mc_request("example.com", b"u", true).to_cbor();
    assert_eq!(body[0], 0xa5);
    body.splice(0..1, [0xb8, 0x05]); // the same map with a non-minimal length
    let (r, f) = session_with(async |ch| {
        assert_eq!(ch.ctap(MC, &body).await.unwrap().0, Status::InvalidCbor);
        assert!(recv(&mut ch.ws).await.is_none());
    })
    .await;
    bad_request(r, Status::InvalidCbor);
    assert!(phone_sim::Store::load(&f.store)
        .unwrap()
        .credentials()
        .is_empty());
}

#[tokio::test]
async fn missing_fields() {
    // A makeCredential without its user (key 3), which CTAP requires (rp.name and the user's
    // names are optional and tested as such in ctap_ops).
    let full =
        hybrid_protocol::cbor::decode(&mc_request("example.com", b"u", true).to_cbor()).unwrap();
    let ciborium::value::Value::Map(entries) = full else {
        panic!("a makeCredential request is a map")
    };
    let without_user = ciborium::value::Value::Map(
        entries
            .into_iter()
            .filter(|(k, _)| k.as_integer() != Some(3.into()))
            .collect(),
    );
    let body = hybrid_protocol::cbor::encode(&without_user);
    let (r, f) = session_with(async |ch| {
        assert_eq!(
            ch.ctap(MC, &body).await.unwrap().0,
            Status::MissingParameter
        );
    })
    .await;
    bad_request(r, Status::MissingParameter);
    assert!(phone_sim::Store::load(&f.store)
        .unwrap()
        .credentials()
        .is_empty());

    // Only clientDataHash.
    let body = [0xa1, 0x01, 0x58, 0x20]
        .into_iter()
        .chain([0u8; 32])
        .collect::<Vec<u8>>();
    let (r, _) = session_with(async |ch| {
        assert_eq!(
            ch.ctap(MC, &body).await.unwrap().0,
            Status::MissingParameter
        );
    })
    .await;
    bad_request(r, Status::MissingParameter);

    // getInfo with a payload; getAssertion with a wrong-typed field.
    let (r, _) = session_with(async |ch| {
        assert_eq!(
            ch.ctap(0x04, &[0xa0]).await.unwrap().0,
            Status::InvalidLength
        );
    })
    .await;
    bad_request(r, Status::InvalidLength);
    let (r, _) = session_with(async |ch| {
        // {1: 5, 2: h'..'}: rpId must be text.
        let body: Vec<u8> = [0xa2, 0x01, 0x05, 0x02, 0x58, 0x20]
            .into_iter()
            .chain([0u8; 32])
            .collect();
        assert_eq!(
            ch.ctap(GA, &body).await.unwrap().0,
            Status::CborUnexpectedType
        );
    })
    .await;
    bad_request(r, Status::CborUnexpectedType);
}

#[tokio::test]
async fn second_command() {
    let (r, f) = session_with(async |ch| {
        let req = mc_request("example.com", b"u", true).to_cbor();
        assert_eq!(ch.ctap(MC, &req).await.unwrap().0, Status::Ok);
        let req = mc_request("example.com", b"v", true).to_cbor();
        assert_eq!(ch.ctap(MC, &req).await.unwrap().0, Status::NotAllowed);
    })
    .await;
    bad_request(r, Status::NotAllowed);
    assert_eq!(
        phone_sim::Store::load(&f.store)
            .unwrap()
            .credentials()
            .len(),
        1
    );
}

#[tokio::test]
async fn unsupported_command_ends_without_reply() {
    let (r, _) = session_with(async |ch| {
        ch.send(&Message::Ctap(vec![0x06])).await; // clientPIN
        assert!(recv(&mut ch.ws).await.is_none());
    })
    .await;
    let e = r.unwrap_err();
    assert!(
        e.to_string().contains("unsupported CTAP command 0x06"),
        "{e}"
    );
}

#[tokio::test]
async fn close_before_request() {
    let (r, _) = session_with(async |ch| {
        ch.ws.close(None).await.unwrap();
    })
    .await;
    let e = r.unwrap_err();
    assert!(matches!(e, PhoneError::PeerMisbehaved(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("ended the channel before any request"),
        "{e}"
    );
}

#[tokio::test]
async fn relay_refuses_or_drops() {
    // Nothing listening.
    let f = files();
    let port = test_support::net::closed_port().port();
    let mut phone = Phone::open(&f.store, config(&format!("ws://127.0.0.1:{port}"))).unwrap();
    let desktop = Desktop::new(false);
    let e = phone
        .serve_qr(&desktop.qr, &mut fast_medium(&f.adverts))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            PhoneError::Relay {
                error: tunnel_client::RelayError::Unreachable { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("cannot reach the tunnel relay"),
        "{e}"
    );

    // The same tunnel ID twice: 409.
    let mut cfg = tunnel_server::Config::default();
    cfg.limits.shutdown_grace = std::time::Duration::from_millis(100);
    let relay = tunnel_server::RunningServer::start(cfg).await.unwrap();
    let p1 = Phone::open(&f.store, config(&relay.ws_url())).unwrap();
    let first = spawn_qr(p1, desktop.qr.clone(), f.adverts.clone());
    follow_until_match(&f.adverts, &desktop.eid_key()).await;
    let mut p2 = Phone::open(&f.store, config(&relay.ws_url())).unwrap();
    let e = p2
        .serve_qr(&desktop.qr, &mut fast_medium(&f.adverts))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("409"), "{e}");

    // The relay goes away while the first phone advertises.
    relay.shutdown().await.unwrap();
    let (_, r) = join(first).await;
    let e = r.unwrap_err();
    // The relay says it is going away (1001) rather than just dropping the socket.
    assert!(
        matches!(
            &e,
            PhoneError::Relay {
                error: tunnel_client::RelayError::ClosedByRelay { code: 1001, .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("the relay closed the tunnel: going away (1001)"),
        "{e}"
    );
}

#[tokio::test]
async fn relay_without_routing_id() {
    let relay = test_support::net::serve_each(|tcp| async move {
        let _ = test_support::ws::accept_fido_cable(tcp, &[]).await;
    })
    .await;
    let url = format!("ws://{relay}");
    let f = files();
    let mut phone = Phone::open(&f.store, config(&url)).unwrap();
    let e = phone
        .serve_qr(&Desktop::new(false).qr, &mut fast_medium(&f.adverts))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no X-caBLE-Routing-ID header"),
        "{e}"
    );
}

/// A relay (or a desktop behind one) sending a message over 1 MiB is refused: phone-sim
/// closes the tunnel; 1 MiB exactly still arrives.
#[tokio::test]
async fn a_message_over_one_mib_is_refused() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    for (len, refused) in [((1 << 20) + 1, true), (2 << 20, true), (1 << 20, false)] {
        let relay = test_support::net::serve_each(move |tcp| async move {
            let mut ws =
                test_support::ws::accept_fido_cable(tcp, &[("X-caBLE-Routing-ID", "010203")])
                    .await
                    .unwrap();
            let _ = ws.send(WsMessage::Binary(vec![0x55; len])).await;
            // Hold the socket open until the phone is done with it.
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        let url = format!("ws://{relay}");
        let f = files();
        let mut phone = Phone::open(&f.store, config(&url)).unwrap();
        let e = phone
            .serve_qr(&Desktop::new(false).qr, &mut fast_medium(&f.adverts))
            .await
            .unwrap_err()
            .to_string();
        // Accepted, the message is a (bad) Noise message 1; refused, the read itself fails.
        assert_eq!(
            e.contains("over the 1024 KiB limit"),
            refused,
            "{len} bytes: {e}"
        );
    }
}

/// Relay errors (printed, and logged at WARN when the phone retries) name the URL with the
/// tunnel or contact ID cut to a prefix, as INFO logs do: the full tunnel ID lets anyone race
/// the desktop for the tunnel, the full contact ID lets anyone take the phone's wake-ups.
#[tokio::test]
async fn relay_errors_show_no_full_tunnel_or_contact_id() {
    let f = files();
    let port = test_support::net::closed_port().port();
    let relay_url = format!("ws://127.0.0.1:{port}");
    let desktop = Desktop::new(false);
    let tunnel = desktop.qr.secret.tunnel_id().to_hex();
    let mut phone = Phone::open(&f.store, config(&relay_url)).unwrap();
    let e = phone
        .serve_qr(&desktop.qr, &mut fast_medium(&f.adverts))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot reach the tunnel relay"), "{e}");
    assert!(e.contains(&tunnel[..8]), "a prefix names the tunnel: {e}");
    assert!(!e.contains(&tunnel), "the full tunnel ID: {e}");

    let contact = hybrid_protocol::tunnel::ContactId(vec![0xA7; 24]);
    let full = contact.to_base64url();
    let mut store = phone_sim::Store::load(&f.store).unwrap();
    store.set_contact_id(Some(&contact));
    store.save().unwrap();
    let mut phone = Phone::open(&f.store, config(&relay_url)).unwrap();
    let e = phone.revoke_contact().await.unwrap_err().to_string();
    assert!(e.contains("/cable/register/"), "{e}");
    assert!(!e.contains(&full), "the full contact ID: {e}");
}

/// A relay in front of `relay` that answers the first `refusals` upgrades with 503 "shutting
/// down", as a draining relay does, and passes later connections through; with the number of
/// connections it has had.
async fn draining_then(
    relay: std::net::SocketAddr,
    refusals: u32,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let seen = std::sync::Arc::new(AtomicU32::new(0));
    let count = seen.clone();
    let front = test_support::net::serve_each(move |mut tcp| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move {
            if n >= refusals {
                let mut back = tokio::net::TcpStream::connect(relay).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut back).await;
                return;
            }
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => head.extend_from_slice(&buf[..k]),
                }
            }
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 14\r\n\
                      Connection: close\r\n\r\nshutting down\n",
                )
                .await;
        }
    })
    .await;
    (format!("ws://{front}"), seen)
}

#[tokio::test]
async fn a_draining_relay_is_tried_again_until_it_opens_the_tunnel() {
    let relay = relay().await;
    let (url, seen) = draining_then(relay.addr(), 2).await;
    let f = files();
    let phone = Phone::open(&f.store, config(&url)).unwrap();
    let desktop = Desktop::new(false);
    let task = spawn_qr(phone, desktop.qr.clone(), f.adverts.clone());
    let matched = follow_until_match(&f.adverts, &desktop.eid_key()).await;
    assert_eq!(matched.plaintext.routing_id, relay.routing_id());
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
    let mut ch = desktop.open(&relay.ws_url(), &f.adverts).await;
    let (s, _) = ch.ctap(0x04, &[]).await.unwrap();
    assert_eq!(s, Status::Ok);
    ch.shutdown().await;
    let (_, outcome) = join(task).await;
    assert_eq!(outcome.unwrap().get_info_served, 1);
}

#[tokio::test]
async fn a_relay_that_keeps_draining_fails_the_phone_within_its_timeout() {
    let relay = relay().await;
    let (url, seen) = draining_then(relay.addr(), u32::MAX).await;
    let f = files();
    let mut cfg = config(&url);
    cfg.timeout = std::time::Duration::from_secs(1);
    let mut phone = Phone::open(&f.store, cfg).unwrap();
    let e = tokio::time::timeout(
        STEP,
        phone.serve_qr(&Desktop::new(false).qr, &mut fast_medium(&f.adverts)),
    )
    .await
    .expect("the phone gives up")
    .unwrap_err();
    let tries = seen.load(std::sync::atomic::Ordering::SeqCst);
    assert!(tries > 1, "tried again before giving up: {tries}");
    assert!(
        matches!(
            &e,
            PhoneError::Relay {
                error: tunnel_client::RelayError::Refused { status: 503, .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("shutting down"), "{e}");
}

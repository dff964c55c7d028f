//! Linked (state-assisted) sessions end to end through the relay's contact channel (§8.3).

use futures_util::SinkExt as _;
use hybrid_protocol::ctap::{GetAssertionResponse, Status};
use hybrid_protocol::handshake::Initiator;
use hybrid_protocol::linking::{ClientPayload, VerifiedLink};
use hybrid_protocol::qr::RequestType;
use hybrid_protocol::tunnel::{ContactId, TunnelPath};
use phone_sim::{Operation, Phone, PhoneError};
use rand_core::OsRng;

use crate::harness::*;

/// A QR session that registers a discoverable credential and links the phone.
async fn link(relay_url: &str, f: &Files) -> (VerifiedLink, Vec<u8>) {
    let phone = Phone::open(&f.store, config(relay_url)).unwrap();
    let desktop = Desktop::new(true);
    let task = spawn_qr(phone, desktop.qr.clone(), f.adverts.clone());
    let mut ch = desktop.open(relay_url, &f.adverts).await;
    let hash = *ch.session.handshake_hash();
    let (s, body) = ch
        .ctap(MC, &mc_request("example.com", b"user", true).to_cbor())
        .await
        .unwrap();
    assert_eq!(s, Status::Ok);
    let updates = ch.shutdown().await;
    let (_, outcome) = join(task).await;
    let Operation::MadeCredential { credential_id, .. } = outcome.unwrap().operation else {
        panic!("no credential: {body:?}");
    };
    let link = updates
        .into_iter()
        .next()
        .expect("linking info")
        .verify(&desktop.identity, &hash)
        .unwrap();
    (link, credential_id)
}

/// The desktop's side of a linked getAssertion: contact, advert, NKpsk0, request, shutdown.
async fn linked_sign_in(relay_url: &str, f: &Files, link: &VerifiedLink, cred: &[u8]) -> Status {
    let info = link.info();
    let payload = ClientPayload::new(info.link_id, RequestType::GetAssertion, &mut OsRng).unwrap();
    let mut ws = connect(
        relay_url,
        &TunnelPath::Contact(ContactId(info.contact_id.clone())),
        Some(payload.to_header()),
    )
    .await;
    let key = info.link_secret.eid_key(&payload.client_nonce);
    let matched = follow_until_match(&f.adverts, &key).await;
    let psk = matched.psk(info.link_secret.expose());
    let (waiting, msg1) =
        Initiator::start_linked(&info.authenticator_public_key, &psk, &mut OsRng).unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        msg1.to_vec(),
    ))
    .await
    .unwrap();
    let msg2 = recv(&mut ws).await.expect("msg2");
    let session = waiting.finish(&msg2).unwrap();
    let mut ch = Channel::after_handshake(ws, session).await;
    let ga = ga_request("example.com", &[cred]);
    let (s, body) = ch.ctap(GA, &ga.to_cbor()).await.unwrap();
    if s == Status::Ok {
        GetAssertionResponse::from_cbor(&body).unwrap();
    }
    let updates = ch.shutdown().await;
    assert!(
        updates.is_empty(),
        "phones send no linking update in linked sessions"
    );
    s
}

#[tokio::test]
async fn linked_session_end_to_end() {
    let relay = relay().await;
    let url = relay.ws_url();
    let f = files();
    let (link, cred) = link(&url, &f).await;

    // The phone holds its registration and serves one wake-up.
    let mut phone = Phone::open(&f.store, config(&url)).unwrap();
    let adverts = f.adverts.clone();
    let task = tokio::spawn(async move {
        let mut medium = fast_medium(&adverts);
        let r = phone.serve_linked(&mut medium, Some(1)).await;
        (phone, r)
    });
    // Fresh advert file content is appended; follow_until_match trial-decrypts every line.
    assert_eq!(linked_sign_in(&url, &f, &link, &cred).await, Status::Ok);
    let (phone, results) = join(task).await;
    let results = results.unwrap();
    assert_eq!(results.len(), 1);
    assert!(matches!(
        results[0].as_ref().unwrap().operation,
        Operation::GotAssertion { .. }
    ));
    assert_eq!(phone.store().links().len(), 1);
}

#[tokio::test]
async fn revoked_link_and_contact() {
    let relay = relay().await;
    let url = relay.ws_url();
    let f = files();
    let (link, _) = link(&url, &f).await;

    // Revoking the link locally: wake-ups for it are ignored (the phone keeps listening).
    let mut phone = Phone::open(&f.store, config(&url)).unwrap();
    let mut store = phone_sim::Store::load(&f.store).unwrap();
    store
        .revoke_link(&hex::encode(link.info().link_id))
        .unwrap();
    store.save().unwrap();
    drop(phone);
    phone = Phone::open(&f.store, config(&url)).unwrap();
    let adverts = f.adverts.clone();
    let task = tokio::spawn(async move {
        let mut medium = fast_medium(&adverts);
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            phone.serve_linked(&mut medium, Some(1)),
        )
        .await;
        (phone, r)
    });
    let payload =
        ClientPayload::new(link.info().link_id, RequestType::GetAssertion, &mut OsRng).unwrap();
    let _ws = connect(
        &url,
        &TunnelPath::Contact(ContactId(link.info().contact_id.clone())),
        Some(payload.to_header()),
    )
    .await;
    let (mut phone, r) = join(task).await;
    assert!(r.is_err(), "no session was served for a revoked link");

    // Revoking the contact ID: the relay answers 410 to the desktop.
    phone.revoke_contact().await.unwrap();
    assert!(phone.store().contact_id().is_none());
    assert!(phone.store().links().is_empty());
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{url}{}",
            TunnelPath::Contact(ContactId(link.info().contact_id.clone())).to_path()
        ))
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "fido.cable".parse().unwrap());
    req.headers_mut().insert(
        "X-caBLE-Client-Payload",
        payload.to_header().parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 410)
        }
        other => panic!("expected 410, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn resume_after_relay_restart_registers_anew() {
    let relay1 = relay().await;
    let f = files();
    let (_link, _) = link(&relay1.ws_url(), &f).await;
    let old = phone_sim::Store::load(&f.store)
        .unwrap()
        .contact_id()
        .unwrap();
    relay1.shutdown().await.unwrap();
    // A new relay does not know the contact ID: 410 on resume, the phone registers anew and
    // its old links are dead.
    let relay2 = relay().await;
    let mut phone = Phone::open(&f.store, config(&relay2.ws_url())).unwrap();
    let mut medium = fast_medium(&f.adverts);
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(800),
        phone.serve_linked(&mut medium, Some(1)),
    )
    .await;
    let new = phone.store().contact_id().expect("registered anew");
    assert_ne!(new, old);
    assert!(phone.store().links().is_empty());
    let e = PhoneError::ContactGone.to_string();
    assert!(e.contains("410"), "{e}");
}

#[tokio::test]
async fn linked_phone_sees_links_made_by_another_process_on_the_same_store() {
    let relay = relay().await;
    let url = relay.ws_url();
    let f = files();
    // `phone-sim linked` starts first and registers…
    let mut listener = Phone::open(&f.store, config(&url)).unwrap();
    let adverts = f.adverts.clone();
    let task = tokio::spawn(async move {
        let mut medium = fast_medium(&adverts);
        let r = listener.serve_linked(&mut medium, Some(1)).await;
        (listener, r)
    });
    for _ in 0..500 {
        if phone_sim::Store::load(&f.store)
            .unwrap()
            .contact_id()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let contact = phone_sim::Store::load(&f.store)
        .unwrap()
        .contact_id()
        .expect("registered");
    // …then `phone-sim scan` links a desktop under the same contact ID.
    let (link, cred) = link(&url, &f).await;
    assert_eq!(link.info().contact_id, contact.0);
    assert_eq!(linked_sign_in(&url, &f, &link, &cred).await, Status::Ok);
    let (_, results) = join(task).await;
    assert!(results.unwrap()[0].is_ok());
}

//! Linked (state-assisted) sessions end to end through the relay's contact channel
//! (docs/PROTOCOL.md#flow-linked).

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

/// The relay forgets a minted contact ID nobody resumes within the
/// unconfirmed window. The phone confirms the ID it mints for linking by resuming it at once,
/// so a linked sign-in long after the QR session (here: after the window) still reaches it.
#[tokio::test]
async fn a_contact_id_minted_for_linking_outlives_the_unconfirmed_window() {
    let mut c = tunnel_server::Config::default();
    c.limits.unconfirmed_contact_expiry = std::time::Duration::from_millis(200);
    let relay = tunnel_server::RunningServer::start(c).await.unwrap();
    let url = relay.ws_url();
    let f = files();
    let (link, cred) = link(&url, &f).await;
    let minted = phone_sim::Store::load(&f.store)
        .unwrap()
        .contact_id()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;

    let mut phone = Phone::open(&f.store, config(&url)).unwrap();
    let adverts = f.adverts.clone();
    let task = tokio::spawn(async move {
        let mut medium = fast_medium(&adverts);
        let r = phone.serve_linked(&mut medium, Some(1)).await;
        (phone, r)
    });
    assert_eq!(linked_sign_in(&url, &f, &link, &cred).await, Status::Ok);
    let (phone, results) = join(task).await;
    assert!(results.unwrap()[0].is_ok());
    assert_eq!(
        phone.store().contact_id(),
        Some(minted),
        "resumed, not re-registered"
    );
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
    let contact = TunnelPath::Contact(ContactId(link.info().contact_id.clone())).to_path();
    let opened = test_support::ws::open_fido_cable(
        &format!("{url}{contact}"),
        &[("X-caBLE-Client-Payload", &payload.to_header())],
        STEP,
    )
    .await;
    assert_eq!(test_support::ws::refused_status(opened), 410);
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

/// The HTTP status of opening `path` on the relay with `headers` (101 when it upgrades).
async fn open_status(relay_url: &str, path: &str, headers: &[(&str, String)]) -> u16 {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = format!("{relay_url}{path}");
    match test_support::ws::open_fido_cable(&url, &headers, STEP).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("cannot reach the relay: {e}"),
    }
}

/// The relay returns a registration secret only to the phone, which keeps
/// it in its store (redacted in Debug); a desktop holding the contact ID from linking cannot
/// resume the phone's registration (it would steal its wake-ups, and could revoke it), while
/// the phone resumes, serves a linked sign-in, and revokes.
#[tokio::test]
async fn only_the_phone_can_resume_or_revoke_its_registration() {
    let relay = relay().await;
    let url = relay.ws_url();
    let f = files();
    let (link, cred) = link(&url, &f).await;
    let store = phone_sim::Store::load(&f.store).unwrap();
    let contact = store.contact_id().unwrap();
    let secret = store
        .contact_secret()
        .expect("the phone stored the relay's registration secret");
    assert!(secret.owns(&contact.0[3..]));
    let shown = format!("{store:?} {secret:?}");
    assert!(
        !shown.contains(&hex::encode(secret.expose()))
            && !shown.contains(secret.to_base64url().as_str()),
        "{shown}"
    );

    // What a linked desktop holds: the contact ID. Resuming with it alone is refused.
    assert_eq!(link.info().contact_id, contact.0);
    let resume = format!("/cable/register/{}", contact.to_base64url());
    assert_eq!(open_status(&url, &resume, &[]).await, 403);

    // The phone resumes with its secret and serves a linked sign-in.
    let mut phone = Phone::open(&f.store, config(&url)).unwrap();
    let adverts = f.adverts.clone();
    let task = tokio::spawn(async move {
        let mut medium = fast_medium(&adverts);
        let r = phone.serve_linked(&mut medium, Some(1)).await;
        (phone, r)
    });
    assert_eq!(linked_sign_in(&url, &f, &link, &cred).await, Status::Ok);
    let (mut phone, results) = join(task).await;
    assert!(results.unwrap()[0].is_ok());

    // And revokes: the desktop's wake-ups and resumes are 410 from then on.
    phone.revoke_contact().await.unwrap();
    assert!(phone.store().contact_secret().is_none());
    let payload = ClientPayload::new(link.info().link_id, RequestType::GetAssertion, &mut OsRng)
        .unwrap()
        .to_header();
    let wake = TunnelPath::Contact(contact.clone()).to_path();
    assert_eq!(
        open_status(&url, &wake, &[("X-caBLE-Client-Payload", payload)]).await,
        410
    );
}

/// Migration: a store without registration secrets (no `contact_secret`) under a
/// contact ID the relay restored as legacy resumes as a legacy contact, keeping its
/// ID and links; when the phone next has to register (here: a relay that forgot it), it is
/// given a secret.
#[tokio::test]
async fn a_secretless_store_resumes_as_legacy_and_gets_a_secret_when_it_re_registers() {
    let dir = tempfile::tempdir().unwrap();
    let contacts = dir.path().join("contacts");
    let key = [0x42u8; 16];
    std::fs::write(&contacts, format!("+{}\n", hex::encode(key))).unwrap();
    let with_store = tunnel_server::Config {
        contact_store: Some(contacts),
        ..tunnel_server::Config::default()
    };
    let mut id = with_store.routing_id.0.to_vec();
    id.extend_from_slice(&key);
    let legacy = ContactId(id);
    let relay1 = tunnel_server::RunningServer::start(with_store)
        .await
        .unwrap();
    let f = files();
    let mut store = phone_sim::Store::open_or_create(&f.store, &mut OsRng).unwrap();
    store.set_contact_id(Some(&legacy));
    store.save().unwrap();
    let text = std::fs::read_to_string(&f.store).unwrap();
    assert!(
        !text.contains("contact_secret"),
        "an old-format store: {text}"
    );

    let mut phone = Phone::open(&f.store, config(&relay1.ws_url())).unwrap();
    let adverts = f.adverts.clone();
    let task = tokio::spawn(async move {
        let mut medium = fast_medium(&adverts);
        let _ = phone.serve_linked(&mut medium, Some(1)).await;
    });
    let metrics = format!("http://{}/metrics", relay1.addr());
    let mut connected = false;
    for _ in 0..200 {
        let body = http_get(&metrics).await;
        if body.contains("tunnel_server_registrations_connected 1\n") {
            connected = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
    assert!(connected, "the legacy phone resumed its registration");
    let store = phone_sim::Store::load(&f.store).unwrap();
    assert_eq!(
        store.contact_id(),
        Some(legacy.clone()),
        "same ID, links kept"
    );
    assert!(store.contact_secret().is_none());
    relay1.shutdown().await.unwrap();

    // A relay that does not know the ID: 410, the phone registers anew and gets a secret.
    let relay2 = relay().await;
    let mut phone = Phone::open(&f.store, config(&relay2.ws_url())).unwrap();
    let mut medium = fast_medium(&f.adverts);
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(800),
        phone.serve_linked(&mut medium, Some(1)),
    )
    .await;
    let new = phone.store().contact_id().expect("registered anew");
    assert_ne!(new, legacy);
    let secret = phone.store().contact_secret().expect("given a secret");
    assert!(secret.owns(&new.0[3..]));
}

/// A plain HTTP/1.1 GET on 127.0.0.1, returning the body.
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

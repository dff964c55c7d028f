//! The QR flow over a real relay: tunnel, advert, handshake, post-handshake, linking, close.

use hybrid_protocol::ctap::{GetInfo, Status};
use hybrid_protocol::eid;
use hybrid_protocol::session::Message;
use phone_sim::{Operation, Phone, RecordingAdvertiser};

use crate::harness::*;

#[tokio::test]
async fn qr_session_get_info_then_shutdown() {
    let relay = relay().await;
    let f = files();
    let phone = Phone::open(&f.store, config(&relay.ws_url())).unwrap();
    let desktop = Desktop::new(false);
    let task = spawn_qr(phone, desktop.qr.clone(), f.adverts.clone());
    let matched = follow_until_match(&f.adverts, &desktop.eid_key()).await;
    assert_eq!(matched.plaintext.routing_id, relay.routing_id());
    assert_eq!(matched.plaintext.domain.0, 0);
    let mut ch = desktop.open(&relay.ws_url(), &f.adverts).await;
    assert_eq!(ch.post_handshake.features, vec!["ctap".to_string()]);
    let info = GetInfo::from_cbor(ch.post_handshake.get_info.as_ref().unwrap()).unwrap();
    assert_eq!(info.versions, ["FIDO_2_0", "FIDO_2_1"]);
    assert_eq!(info.extensions, ["prf"]);
    assert_eq!(info.aaguid, phone_sim::AAGUID);
    assert_eq!(info.transports, ["internal", "hybrid"]);
    for (k, v) in [("rk", true), ("up", true), ("uv", true), ("plat", false)] {
        assert_eq!(info.options.get(k), Some(&v), "{k}");
    }
    // getInfo over the tunnel too, twice; the session continues.
    for _ in 0..2 {
        let (s, body) = ch.ctap(0x04, &[]).await.unwrap();
        assert_eq!(s, Status::Ok);
        assert_eq!(GetInfo::from_cbor(&body).unwrap(), info);
    }
    let updates = ch.shutdown().await;
    assert!(
        updates.is_empty(),
        "no linking when the QR does not allow it"
    );
    let (_, outcome) = join(task).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.operation, Operation::NoRequest);
    assert_eq!(outcome.get_info_served, 2);
    // Advertising stopped once msg1 arrived: the file stops growing.
    let n = advert_lines(&f.adverts).len();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(advert_lines(&f.adverts).len(), n);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn selection_ends_the_session() {
    let relay = relay().await;
    let f = files();
    let phone = Phone::open(&f.store, config(&relay.ws_url())).unwrap();
    let desktop = Desktop::new(false);
    let task = spawn_qr(phone, desktop.qr.clone(), f.adverts.clone());
    let mut ch = desktop.open(&relay.ws_url(), &f.adverts).await;
    ch.send(&Message::Ctap(vec![0x0B])).await;
    assert!(
        recv(&mut ch.ws).await.is_none(),
        "the phone closes without a reply"
    );
    let (_, outcome) = join(task).await;
    assert_eq!(outcome.unwrap().operation, Operation::Selected);
}

#[tokio::test]
async fn linking_info_is_signed_and_stored() {
    let relay = relay().await;
    let f = files();
    let phone = Phone::open(&f.store, config(&relay.ws_url())).unwrap();
    let desktop = Desktop::new(true);
    let task = spawn_qr(phone, desktop.qr.clone(), f.adverts.clone());
    let mut ch = desktop.open(&relay.ws_url(), &f.adverts).await;
    let hash = *ch.session.handshake_hash();
    let (s, _) = ch.ctap(0x04, &[]).await.unwrap();
    assert_eq!(s, Status::Ok);
    let updates = ch.shutdown().await;
    let (phone, outcome) = join(task).await;
    let outcome = outcome.unwrap();
    assert_eq!(updates.len(), 1);
    let link = updates[0]
        .clone()
        .verify(&desktop.identity, &hash)
        .expect("valid handshake signature");
    let info = link.info();
    assert_eq!(Some(info.link_id), outcome.link_id);
    assert_eq!(
        info.authenticator_public_key,
        phone.store().identity_key().public_key()
    );
    assert_eq!(info.contact_id, phone.store().contact_id().unwrap().0);
    assert_eq!(info.name, "phone-sim");
    assert_eq!(
        phone.store().link_secret(&info.link_id).unwrap(),
        info.link_secret,
        "the phone can derive the link secret it handed out"
    );
    assert_eq!(phone.store().links().len(), 1);
}

#[tokio::test]
async fn advert_is_a_fresh_valid_eid_each_session() {
    // Without a medium: the advertiser records what the phone asked for.
    let relay = relay().await;
    let f = files();
    let desktop = Desktop::new(false);
    let mut phone = Phone::open(&f.store, config(&relay.ws_url())).unwrap();
    let qr = desktop.qr.clone();
    let task = tokio::spawn(async move {
        let mut rec = RecordingAdvertiser::default();
        let r = phone.serve_qr(&qr, &mut rec).await;
        (rec, r)
    });
    // Connect as the desktop using the routing ID we know the relay announces.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut ws = connect(
        &relay.ws_url(),
        &hybrid_protocol::tunnel::TunnelPath::Connect(relay.routing_id(), desktop.tunnel_id()),
        None,
    )
    .await;
    use futures_util::SinkExt as _;
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(vec![0; 10]))
        .await
        .unwrap();
    let (rec, r) = join(task).await;
    assert!(r.is_err());
    assert_eq!(rec.started.len(), 1);
    assert_eq!(rec.stops, 1);
    let (uuid, data) = &rec.started[0];
    assert_eq!(*uuid, eid::SERVICE_UUID_FIDO);
    assert_eq!(data.len(), 20);
    eid::decrypt(&desktop.eid_key(), data).unwrap();
}

//! The phone as a security key, end to end without a kernel: a platform speaking CTAPHID to
//! the key's event loop on an in-process HID device, the relay on loopback and phone-sim as
//! the phone. Registrations and assertions are verified by webauthn-rs; the bad-input cases
//! (cancel mid-ceremony, the phone vanishing, interleaved channels, a 7609-byte message) end in
//! a clear CTAP or CTAPHID error, never a hang, and the key serves the next request.

use std::time::Duration;

use bridge::key::{Choice, DeviceEvent, UiUpdate};
use bridge::webauthn::{authentication_json, registration_json};
use hybrid_protocol::ctap::{CredentialDescriptor, MakeCredentialRequest};
use hybrid_tests::key::{HidHost, KeyRig, PhoneMode};
use hybrid_tests::tap::{self, Cut, CutEnd};
use phone_sim::{Approve, Attestation, PhoneConfig};
use sha2::{Digest as _, Sha256};

use super::*;

const WAIT: Duration = Duration::from_secs(30);

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn cbor_request(cmd: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![cmd];
    out.extend_from_slice(body);
    out
}

/// Registers `user` through the key and has webauthn-rs verify it.
async fn register_through_key(
    host: &mut HidHost,
    cid: u32,
    rp: &RelyingParty,
    user: &str,
) -> webauthn_rs_core::proto::Credential {
    let (pending, options) = registration_options(rp, user);
    let client_data = options.client_data();
    let body = options.to_ctap(sha256(client_data.as_bytes())).to_cbor();
    let t = host.cbor(cid, &cbor_request(0x01, &body), WAIT).await;
    assert_eq!(
        t.reply.data[0],
        0,
        "makeCredential through the key: {:02x?}",
        &t.reply.data[..1]
    );
    let json = registration_json(&options, &client_data, &t.reply.data[1..]).unwrap();
    rp.finish_registration(&pending, &serde_json::to_string(&json).unwrap())
        .expect("webauthn-rs accepts the registration")
}

/// A Firefox-style sign-in: the silent probe, then the real request. Returns the result.
async fn sign_in_through_key(
    host: &mut HidHost,
    cid: u32,
    rp: &RelyingParty,
    cred: &webauthn_rs_core::proto::Credential,
) {
    let (pending, options) = sign_in_options(rp, cred);
    let client_data = options.client_data();
    let mut req = options.to_ctap(sha256(client_data.as_bytes()));
    // Firefox's probe: up false, the clientDataHash of "".
    let mut probe = req.clone();
    probe.client_data_hash = sha256(b"");
    probe.options.up = Some(false);
    let t = host
        .cbor(cid, &cbor_request(0x02, &probe.to_cbor()), WAIT)
        .await;
    assert_eq!(t.reply.data[0], 0, "the probe is answered");
    assert!(
        t.keepalives.is_empty(),
        "a probe needs nobody: {:?}",
        t.keepalives
    );
    req.options.up = Some(true);
    let t = host
        .cbor(cid, &cbor_request(0x02, &req.to_cbor()), WAIT)
        .await;
    assert_eq!(t.reply.data[0], 0, "getAssertion through the key");
    // phone-sim, as Chromium's phone, lists the transports `internal` and `cable` with the
    // credential; USB platforms choke on `cable`, so the key leaves the member out.
    let answer = hybrid_protocol::cbor::decode(&t.reply.data[1..]).unwrap();
    let credential = answer
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| *k == hybrid_protocol::cbor::int(1));
    let credential = credential.unwrap().1.as_map().unwrap();
    assert!(
        !credential
            .iter()
            .any(|(k, _)| k.as_text() == Some("transports")),
        "{credential:?}"
    );
    let json = authentication_json(&options, &client_data, &t.reply.data[1..]).unwrap();
    let result = rp
        .finish_authentication(&pending, &serde_json::to_string(&json).unwrap())
        .expect("webauthn-rs accepts the assertion");
    assert_eq!(result.cred_id(), &cred.cred_id);
}

fn qr_shown(u: &UiUpdate) -> bool {
    matches!(u, UiUpdate::QrCode { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_sign_in_through_the_key_verify_with_webauthn_rs() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = KeyRig::start(dir.path().into(), PhoneConfig::default(), |_| {}).await;
    let cid = rig.host.init().await;
    let info = rig.host.cbor(cid, &[0x04], WAIT).await;
    assert_eq!(info.reply.data[0], 0);
    let rp = rp();
    let cred = register_through_key(&mut rig.host, cid, &rp, "alice").await;
    let before = rig.drain_updates();
    assert_eq!(
        before.iter().filter(|u| qr_shown(u)).count(),
        1,
        "{before:?}"
    );
    assert!(before.contains(&UiUpdate::Done));
    let asked = rig.choices();
    assert_eq!(
        asked[0].rp_id.as_deref(),
        Some(RP_ID),
        "the UI names who asks"
    );
    assert_eq!(asked[0].suggested, Choice::Qr);
    sign_in_through_key(&mut rig.host, cid, &rp, &cred).await;
    let after = rig.drain_updates();
    assert_eq!(
        after.iter().filter(|u| qr_shown(u)).count(),
        1,
        "the probe shows no QR code; the sign-in shows one: {after:?}"
    );
    assert!(std::fs::read_to_string(rig.dir.join("qr.txt"))
        .unwrap()
        .starts_with("FIDO:/"));
    rig.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_say_upneeded_while_nobody_scans_and_a_timeout_is_a_ctap_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = KeyRig::start(dir.path().into(), PhoneConfig::default(), |c| {
        c.bridge.timeouts.advert = Duration::from_millis(1500);
    })
    .await;
    rig.set_phone_mode(PhoneMode::Ignore);
    let cid = rig.host.init().await;
    let rp = rp();
    let (_, options) = registration_options(&rp, "bob");
    let body = options.to_ctap([7; 32]).to_cbor();
    let t = rig.host.cbor(cid, &cbor_request(0x01, &body), WAIT).await;
    assert_eq!(t.reply.data, vec![0x2f], "CTAP2_ERR_USER_ACTION_TIMEOUT");
    // 1.5 s at one keepalive per 100 ms; the exact cadence is measured in BENCHMARKS.md.
    assert!(t.keepalives.len() >= 5, "{:?}", t.keepalives);
    assert!(
        t.keepalives.iter().all(|(_, s)| *s == 2),
        "STATUS_UPNEEDED while the QR code waits: {:?}",
        t.keepalives
    );
    let failed = rig
        .wait_for(WAIT, |u| matches!(u, UiUpdate::Failed { .. }))
        .await;
    assert!(
        matches!(&failed, UiUpdate::Failed { message } if message.contains("no advert matched")),
        "{failed:?}"
    );
    // The key serves the next request.
    rig.set_phone_mode(PhoneMode::Scan);
    register_through_key(&mut rig.host, cid, &rp, "bob").await;
    rig.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_mid_ceremony_answers_at_once_and_the_next_request_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = KeyRig::start(dir.path().into(), PhoneConfig::default(), |_| {}).await;
    rig.set_phone_mode(PhoneMode::Ignore);
    let cid = rig.host.init().await;
    let rp = rp();
    let (_, options) = registration_options(&rp, "carol");
    rig.host.send(
        cid,
        0x10,
        &cbor_request(0x01, &options.to_ctap([1; 32]).to_cbor()),
    );
    rig.wait_for(WAIT, qr_shown).await;
    let t = rig.host.transact(cid, 0x11, &[], WAIT).await;
    assert_eq!(
        (t.reply.cmd, t.reply.data.as_slice()),
        (0x10, &[0x2d][..]),
        "the request ends with CTAP2_ERR_KEEPALIVE_CANCEL"
    );
    rig.wait_for(WAIT, |u| *u == UiUpdate::Cancelled).await;
    assert_eq!(rig.phone_credentials().await, 0);
    rig.set_phone_mode(PhoneMode::Scan);
    register_through_key(&mut rig.host, cid, &rp, "carol").await;
    rig.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_the_window_mid_ceremony_denies_the_request_and_the_next_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = KeyRig::start(dir.path().into(), PhoneConfig::default(), |_| {}).await;
    rig.set_phone_mode(PhoneMode::Ignore);
    let cid = rig.host.init().await;
    let rp = rp();
    let (_, options) = registration_options(&rp, "dave");
    rig.host.send(
        cid,
        0x10,
        &cbor_request(0x01, &options.to_ctap([1; 32]).to_cbor()),
    );
    rig.wait_for(WAIT, qr_shown).await;
    let asked = std::time::Instant::now();
    rig.cancel_in_ui();
    let t = loop {
        let m = rig.host.recv(WAIT).await.expect("an answer");
        if m.cmd != 0x3b {
            break m; // not a keepalive
        }
    };
    assert_eq!(
        (t.cid, t.cmd, t.data.as_slice()),
        (cid, 0x10, &[0x27][..]),
        "the request ends with CTAP2_ERR_OPERATION_DENIED"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "at once, not at the advert timeout: {:?}",
        asked.elapsed()
    );
    rig.wait_for(
        WAIT,
        |u| matches!(u, UiUpdate::Failed { message } if message.starts_with("cancelled here")),
    )
    .await;
    assert_eq!(rig.phone_credentials().await, 0);
    rig.set_phone_mode(PhoneMode::Scan);
    register_through_key(&mut rig.host, cid, &rp, "dave").await;
    rig.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_vanishing_is_a_clear_ctap_error_and_the_next_request_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let relay = tunnel_server::RunningServer::start(tunnel_server::Config::default())
        .await
        .unwrap();
    // The phone's first socket dies after msg1, msg2 and the post-handshake message.
    let (url, _) = tap::start_cutting(
        relay.ws_url(),
        Some(Cut {
            path_prefix: "/cable/new",
            after: 3,
            sockets: 1,
            relay_side: CutEnd::Close,
        }),
    )
    .await
    .unwrap();
    let mut rig = KeyRig::start_with_relay_url(
        dir.path().into(),
        relay,
        url,
        PhoneConfig::default(),
        |_| {},
    )
    .await;
    let cid = rig.host.init().await;
    let rp = rp();
    let (_, options) = registration_options(&rp, "dave");
    let t = rig
        .host
        .cbor(
            cid,
            &cbor_request(0x01, &options.to_ctap([2; 32]).to_cbor()),
            WAIT,
        )
        .await;
    assert_eq!(t.reply.data, vec![0x7f], "CTAP1_ERR_OTHER");
    let failed = rig
        .wait_for(WAIT, |u| matches!(u, UiUpdate::Failed { .. }))
        .await;
    assert!(
        matches!(&failed, UiUpdate::Failed { message } if message.contains("closed")),
        "the person is told the connection closed: {failed:?}"
    );
    register_through_key(&mut rig.host, cid, &rp, "dave").await;
    rig.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_channel_is_busy_during_a_ceremony_and_served_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = KeyRig::start(dir.path().into(), PhoneConfig::default(), |_| {}).await;
    rig.set_phone_mode(PhoneMode::Ignore);
    let a = rig.host.init().await;
    let b = rig.host.init().await;
    let rp = rp();
    let (_, options) = registration_options(&rp, "erin");
    rig.host.send(
        a,
        0x10,
        &cbor_request(0x01, &options.to_ctap([3; 32]).to_cbor()),
    );
    rig.wait_for(WAIT, qr_shown).await;
    let busy = rig.host.transact(b, 0x10, &[0x04], WAIT).await;
    assert_eq!(
        (busy.reply.cmd, busy.reply.data.as_slice()),
        (0x3f, &[0x06][..])
    );
    // A third program can still get a channel.
    let c = rig.host.init().await;
    assert!(![a, b].contains(&c));
    let cancelled = rig.host.transact(a, 0x11, &[], WAIT).await;
    assert_eq!(cancelled.reply.data, vec![0x2d]);
    let info = rig.host.cbor(b, &[0x04], WAIT).await;
    assert_eq!(info.reply.data[0], 0, "b is served once a is done");
    rig.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_7609_byte_request_reaches_the_phone_and_a_7609_byte_ping_echoes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = KeyRig::start(dir.path().into(), PhoneConfig::default(), |_| {}).await;
    let cid = rig.host.init().await;
    let ping: Vec<u8> = (0..7609).map(|i| (i % 253) as u8).collect();
    let t = rig.host.transact(cid, 0x01, &ping, WAIT).await;
    assert_eq!(t.reply.data, ping);
    let rp = rp();
    let (pending, options) = registration_options(&rp, "frank");
    let client_data = options.client_data();
    let mut req: MakeCredentialRequest = options.to_ctap(sha256(client_data.as_bytes()));
    // Pad the exclude list until `command ‖ CBOR` is exactly 7609 bytes.
    let len = |r: &MakeCredentialRequest| 1 + r.to_cbor().len();
    let mut i = 0u8;
    while len(&req) <= 7609 {
        req.exclude_list.push(CredentialDescriptor {
            id: vec![i; 100],
            transports: None,
        });
        i += 1;
    }
    req.exclude_list.pop();
    let last = (0..=100usize)
        .map(|n| CredentialDescriptor {
            id: vec![0xee; n],
            transports: None,
        })
        .find(|d| {
            let mut r = req.clone();
            r.exclude_list.push(d.clone());
            len(&r) == 7609
        })
        .expect("some ID length makes it 7609 bytes");
    req.exclude_list.push(last);
    let payload = cbor_request(0x01, &req.to_cbor());
    assert_eq!(payload.len(), 7609);
    let t = rig.host.cbor(cid, &payload, WAIT).await;
    assert_eq!(t.reply.data[0], 0, "the phone parsed all 7609 bytes");
    let json = registration_json(&options, &client_data, &t.reply.data[1..]).unwrap();
    rp.finish_registration(&pending, &serde_json::to_string(&json).unwrap())
        .expect("webauthn-rs accepts it");
    rig.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phones_own_status_reaches_the_platform_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let phone = PhoneConfig {
        approve: Approve::Deny,
        ..PhoneConfig::default()
    };
    let mut rig = KeyRig::start(dir.path().into(), phone, |_| {}).await;
    let cid = rig.host.init().await;
    let rp = rp();
    let (_, options) = registration_options(&rp, "grace");
    let t = rig
        .host
        .cbor(
            cid,
            &cbor_request(0x01, &options.to_ctap([4; 32]).to_cbor()),
            WAIT,
        )
        .await;
    assert_eq!(
        t.reply.data,
        vec![0x27],
        "CTAP2_ERR_OPERATION_DENIED, from the phone"
    );
    rig.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_closing_the_device_ends_the_ceremony() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = KeyRig::start(dir.path().into(), PhoneConfig::default(), |_| {}).await;
    rig.set_phone_mode(PhoneMode::Ignore);
    let cid = rig.host.init().await;
    let rp = rp();
    let (_, options) = registration_options(&rp, "heidi");
    rig.host.send(
        cid,
        0x10,
        &cbor_request(0x01, &options.to_ctap([5; 32]).to_cbor()),
    );
    rig.wait_for(WAIT, qr_shown).await;
    rig.host.event(DeviceEvent::Closed);
    rig.wait_for(WAIT, |u| *u == UiUpdate::Cancelled).await;
    // Opened again, it works.
    rig.host.event(DeviceEvent::Opened);
    let info = rig.host.cbor(cid, &[0x04], WAIT).await;
    assert_eq!(info.reply.data[0], 0);
    rig.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_phone_is_asked_without_a_qr_code() {
    let dir = tempfile::tempdir().unwrap();
    let phone = PhoneConfig {
        attestation: Attestation::Packed,
        ..PhoneConfig::default()
    };
    let mut rig = KeyRig::start(dir.path().into(), phone, |_| {}).await;
    let cid = rig.host.init().await;
    let rp = rp();
    let cred = register_through_key(&mut rig.host, cid, &rp, "ivan").await;
    let linked = rig
        .wait_for(WAIT, |u| matches!(u, UiUpdate::Linked { .. }))
        .await;
    let UiUpdate::Linked { name } = linked else {
        unreachable!()
    };
    rig.config.phone = Some(name.clone());
    rig.restart();
    let _ = rig.drain_updates();
    let cid = rig.host.init().await;
    let serving = rig.phone_serves_linked().await;
    sign_in_through_key(&mut rig.host, cid, &rp, &cred).await;
    let updates = rig.drain_updates();
    assert!(!updates.iter().any(qr_shown), "{updates:?}");
    assert!(updates.contains(&UiUpdate::AskingPhone { name: name.clone() }));
    assert_eq!(rig.choices().last().unwrap().suggested, Choice::Phone(name));
    serving.await.unwrap();
    rig.stop().await.unwrap();
}

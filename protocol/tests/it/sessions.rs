//! Full sessions driven in memory between initiator and responder with fixed ephemeral keys:
//! the QR-initiated (KNpsk0) and linked (NKpsk0) flows, checked against an independent
//! step-by-step Noise computation written from the spec (docs/PROTOCOL.md#handshake-patterns), then
//! tampered with byte by byte. Every driver loop is bounded.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use hmac::{Hmac, Mac};
use hybrid_protocol::error::{Error, Malformed, Misuse, PeerMisbehaved};
use hybrid_protocol::handshake::{Initiator, Responder, MESSAGE_LEN};
use hybrid_protocol::keys::{IdentityKey, PublicKey, QrSecret, RootSecret};
use hybrid_protocol::linking::{handshake_signature, ClientPayload, LinkingInfo};
use hybrid_protocol::qr::RequestType;
use hybrid_protocol::session::{Message, PostHandshake, Session, Update};
use hybrid_protocol::tunnel::{Domain, RoutingId};
use hybrid_protocol::{eid, Error as E};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

/// An RNG that repeats a fixed byte pattern: makes the ephemeral key equal to the pattern.
struct FixedRng([u8; 32]);

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(self.0[..4].try_into().unwrap())
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().unwrap())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for (i, b) in dest.iter_mut().enumerate() {
            *b = self.0[i % 32];
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for FixedRng {}

const E_I: [u8; 32] = [0x11; 32];
const E_R: [u8; 32] = [0x22; 32];

// ---- an independent Noise computation -------------------------------------------------------

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn hkdf2(ck: &[u8; 32], ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
    let t = hmac(ck, &[ikm]);
    let o1 = hmac(&t, &[&[1]]);
    let o2 = hmac(&t, &[&o1, &[2]]);
    (o1, o2)
}

fn hkdf3(ck: &[u8; 32], ikm: &[u8]) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let t = hmac(ck, &[ikm]);
    let o1 = hmac(&t, &[&[1]]);
    let o2 = hmac(&t, &[&o1, &[2]]);
    let o3 = hmac(&t, &[&o2, &[3]]);
    (o1, o2, o3)
}

struct Sym {
    ck: [u8; 32],
    h: [u8; 32],
    k: [u8; 32],
}

impl Sym {
    fn new(name: &str, prologue: u8) -> Self {
        let mut h = [0u8; 32];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let mut s = Self {
            ck: h,
            h,
            k: [0; 32],
        };
        s.mix_hash(&[prologue]);
        s
    }
    fn mix_hash(&mut self, data: &[u8]) {
        self.h = Sha256::new()
            .chain_update(self.h)
            .chain_update(data)
            .finalize()
            .into();
    }
    fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, k) = hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.k = k;
    }
    fn mix_key_and_hash(&mut self, ikm: &[u8]) {
        let (ck, th, k) = hkdf3(&self.ck, ikm);
        self.ck = ck;
        self.mix_hash(&th);
        self.k = k;
    }
    fn encrypt_and_hash_empty(&mut self) -> [u8; 16] {
        let tag = Aes256Gcm::new(&self.k.into())
            .encrypt(
                &[0u8; 12].into(),
                Payload {
                    msg: &[],
                    aad: &self.h,
                },
            )
            .unwrap();
        self.mix_hash(&tag);
        tag.try_into().unwrap()
    }
}

fn dh(private: &[u8; 32], public: &PublicKey) -> [u8; 32] {
    *IdentityKey::from_bytes(private).unwrap().ecdh(public)
}

/// msg1, msg2, handshake hash, k1 and k2.
type Transcript = ([u8; 81], [u8; 81], [u8; 32], [u8; 32], [u8; 32]);

/// msg1, msg2, handshake hash and (k1, k2) of a KNpsk0 or NKpsk0 handshake, computed by hand.
fn expected_handshake(linked: bool, static_private: &[u8; 32], psk: &[u8; 32]) -> Transcript {
    let s = IdentityKey::from_bytes(static_private)
        .unwrap()
        .public_key();
    let e_i = IdentityKey::from_bytes(&E_I).unwrap().public_key();
    let e_r = IdentityKey::from_bytes(&E_R).unwrap().public_key();
    let name = if linked {
        "Noise_NKpsk0_P256_AESGCM_SHA256"
    } else {
        "Noise_KNpsk0_P256_AESGCM_SHA256"
    };
    let mut sym = Sym::new(name, if linked { 0 } else { 1 });
    sym.mix_hash(&s.to_uncompressed());
    sym.mix_key_and_hash(psk);
    sym.mix_hash(&e_i.to_uncompressed());
    sym.mix_key(&e_i.to_uncompressed());
    if linked {
        sym.mix_key(&dh(&E_I, &s)); // es
    }
    let mut msg1 = [0u8; 81];
    msg1[..65].copy_from_slice(&e_i.to_uncompressed());
    msg1[65..].copy_from_slice(&sym.encrypt_and_hash_empty());
    sym.mix_hash(&e_r.to_uncompressed());
    sym.mix_key(&e_r.to_uncompressed());
    sym.mix_key(&dh(&E_R, &e_i)); // ee
    if !linked {
        sym.mix_key(&dh(&E_R, &s)); // se
    }
    let mut msg2 = [0u8; 81];
    msg2[..65].copy_from_slice(&e_r.to_uncompressed());
    msg2[65..].copy_from_slice(&sym.encrypt_and_hash_empty());
    let (k1, k2) = hkdf2(&sym.ck, &[]);
    (msg1, msg2, sym.h, k1, k2)
}

// ---- drivers -------------------------------------------------------------------------------

struct QrFixture {
    identity: IdentityKey,
    secret: QrSecret,
    plaintext: eid::EidPlaintext,
}

fn qr_fixture() -> QrFixture {
    QrFixture {
        identity: IdentityKey::from_bytes(&[0x02; 32]).unwrap(),
        secret: QrSecret::from_bytes([0x33; 16]),
        plaintext: eid::EidPlaintext {
            nonce: [0x44; 10],
            routing_id: RoutingId([1, 2, 3]),
            domain: Domain(0),
        },
    }
}

fn qr_handshake(f: &QrFixture) -> ([u8; 81], [u8; 81], Session, Session) {
    let advert = eid::encrypt(&f.secret.eid_key(), &f.plaintext);
    let matched = eid::decrypt(&f.secret.eid_key(), &advert).unwrap();
    let (waiting, msg1) = Initiator::start_qr(
        &f.identity,
        &matched.psk(f.secret.expose()),
        &mut FixedRng(E_I),
    )
    .unwrap();
    let (phone, msg2) = Responder::respond_qr(
        &f.identity.public_key(),
        &f.plaintext.psk(f.secret.expose()),
        &msg1,
        &mut FixedRng(E_R),
    )
    .unwrap();
    let desktop = waiting.finish(&msg2).unwrap();
    (msg1, msg2, desktop, phone)
}

#[test]
fn qr_session_matches_independent_noise_and_carries_a_ceremony() {
    let f = qr_fixture();
    let (msg1, msg2, mut desktop, mut phone) = qr_handshake(&f);
    let psk = f.plaintext.psk(f.secret.expose());
    let (e1, e2, hash, k1, k2) = expected_handshake(false, &[0x02; 32], psk.expose());
    assert_eq!(msg1, e1, "message 1 differs from the spec computation");
    assert_eq!(msg2, e2, "message 2 differs from the spec computation");
    assert_eq!(desktop.handshake_hash(), &hash, "client handshake hash");
    assert_eq!(phone.handshake_hash(), &hash, "phone handshake hash");

    // The phone's first frame is the post-handshake message, under k2 with nonce 0 and no AD,
    // padded to 32 bytes with the count in the last byte.
    let ph = PostHandshake::ctap(vec![0xa1, 0x01, 0x81, 0x68]);
    let frame = phone.encrypt(&ph.encode()).unwrap();
    let mut padded = ph.encode();
    let len = padded.len();
    padded.resize(len.div_ceil(32) * 32, 0);
    let last = padded.len() - 1;
    padded[last] = (padded.len() - len - 1) as u8;
    let by_hand = Aes256Gcm::new(&k2.into())
        .encrypt(&[0u8; 12].into(), padded.as_slice())
        .unwrap();
    assert_eq!(
        frame, by_hand,
        "transport frame differs from the spec computation"
    );
    let got = desktop.decrypt(&frame).unwrap();
    assert_eq!(got.as_slice(), ph.encode().as_slice());

    // The client's first frame is under k1 (its counter 0).
    let request = Message::Ctap(vec![0x02, 0xa0]);
    let frame = desktop.encrypt_message(&request).unwrap();
    let mut expected_plain = request.encode();
    expected_plain.resize(32, 0);
    expected_plain[31] = 28;
    assert_eq!(
        frame,
        Aes256Gcm::new(&k1.into())
            .encrypt(&[0u8; 12].into(), expected_plain.as_slice())
            .unwrap()
    );
    assert_eq!(phone.decrypt_message(&frame).unwrap(), request);

    // A bounded ceremony: reply, shutdown; sizes cover both padding edges.
    for size in [0usize, 30, 31, 32, 4096] {
        let reply = Message::Ctap([vec![0x00], vec![7u8; size]].concat());
        let frame = phone.encrypt_message(&reply).unwrap();
        assert_eq!(frame.len() % 32, 16);
        assert_eq!(desktop.decrypt_message(&frame).unwrap(), reply);
    }
    let bye = desktop.encrypt_message(&Message::Shutdown).unwrap();
    assert_eq!(bye.len(), 48, "shutdown is one padded block plus tag");
    assert_eq!(phone.decrypt_message(&bye).unwrap(), Message::Shutdown);
}

#[test]
fn linked_session_matches_independent_noise_and_links_verify() {
    // A phone with a root secret links to a desktop in a QR session...
    let f = qr_fixture();
    let root = RootSecret::from_bytes([0x55; 32]);
    let phone_identity = root.identity_key();
    let contact_id = b"contact-id-bytes".to_vec();
    let link_id = [0x66; 8];
    let link_secret = root.paired_secret(&contact_id, &link_id);
    let (_, _, mut desktop, mut phone) = qr_handshake(&f);
    let info = LinkingInfo {
        contact_id: contact_id.clone(),
        link_id,
        link_secret: link_secret.clone(),
        authenticator_public_key: phone_identity.public_key(),
        name: "Test phone".into(),
        handshake_signature: handshake_signature(
            &phone_identity,
            &f.identity.public_key(),
            phone.handshake_hash(),
        ),
        play_services_tag: None,
    };
    let update = Message::Update(Update {
        linking: Some(info.clone()),
    });
    let frame = phone.encrypt_message(&update).unwrap();
    assert_eq!(
        frame.len(),
        528,
        "updates are sized to a 528-byte ciphertext, as Chromium's phone"
    );
    let Message::Update(Update {
        linking: Some(received),
    }) = desktop.decrypt_message(&frame).unwrap()
    else {
        panic!("expected an update with linking info");
    };
    let verified = received
        .clone()
        .verify(&f.identity, desktop.handshake_hash())
        .unwrap();
    assert_eq!(verified.info(), &info);
    // A signature over another session, or by another key, is rejected.
    let other = IdentityKey::from_bytes(&[0x09; 32]).unwrap();
    assert_eq!(
        received.clone().verify(&other, desktop.handshake_hash()),
        Err(PeerMisbehaved::LinkSignature.into())
    );
    assert_eq!(
        received.clone().verify(&f.identity, &[0; 32]),
        Err(PeerMisbehaved::LinkSignature.into())
    );

    // ...and later the desktop reaches it without a QR code.
    let payload = ClientPayload {
        link_id,
        client_nonce: [0x77; 16],
        request_type: RequestType::GetAssertion,
    };
    let header = payload.to_header();
    assert_eq!(header, header.to_uppercase());
    let on_phone = ClientPayload::from_header(&header.to_lowercase()).unwrap();
    assert_eq!(on_phone, payload);
    let phone_secret = root.paired_secret(&contact_id, &on_phone.link_id);
    let plaintext = eid::EidPlaintext {
        nonce: [0x12; 10],
        routing_id: RoutingId([9, 9, 9]),
        domain: Domain(300),
    };
    let advert = eid::encrypt(&phone_secret.eid_key(&on_phone.client_nonce), &plaintext);
    let stored = verified.into_info();
    let matched =
        eid::decrypt(&stored.link_secret.eid_key(&payload.client_nonce), &advert).unwrap();
    let psk = matched.psk(stored.link_secret.expose());
    let (waiting, msg1) =
        Initiator::start_linked(&stored.authenticator_public_key, &psk, &mut FixedRng(E_I))
            .unwrap();
    let (mut phone2, msg2) = Responder::respond_linked(
        &phone_identity,
        &plaintext.psk(phone_secret.expose()),
        &msg1,
        &mut FixedRng(E_R),
    )
    .unwrap();
    let mut desktop2 = waiting.finish(&msg2).unwrap();
    let (e1, e2, hash, _, _) = expected_handshake(true, &phone_identity.to_bytes(), psk.expose());
    assert_eq!((msg1, msg2), (e1, e2));
    assert_eq!(desktop2.handshake_hash(), &hash);
    assert_eq!(phone2.handshake_hash(), &hash);
    let frame = desktop2
        .encrypt_message(&Message::Ctap(vec![2, 0xa0]))
        .unwrap();
    assert_eq!(
        phone2.decrypt_message(&frame).unwrap(),
        Message::Ctap(vec![2, 0xa0])
    );

    // A link with the wrong secret never gets as far as a handshake.
    let wrong = root.paired_secret(b"other contact", &link_id);
    assert!(eid::decrypt(&wrong.eid_key(&payload.client_nonce), &advert).is_err());
}

fn expect_point_or_auth(altered: &[u8], err: E, who: &str, i: usize) {
    let valid_point = PublicKey::from_uncompressed(&altered[..65]).is_ok();
    let expected: E = if valid_point {
        PeerMisbehaved::HandshakeAuthentication.into()
    } else {
        PeerMisbehaved::HandshakeInvalidPoint.into()
    };
    assert_eq!(err, expected, "{who}: byte {i} altered");
}

#[test]
fn tampering_with_any_handshake_byte_fails_on_the_receiving_side() {
    let f = qr_fixture();
    let (msg1, msg2, _, _) = qr_handshake(&f);
    let psk = f.plaintext.psk(f.secret.expose());
    for i in 0..MESSAGE_LEN {
        for flip in [0x01u8, 0x80] {
            let mut m = msg1;
            m[i] ^= flip;
            let err = Responder::respond_qr(&f.identity.public_key(), &psk, &m, &mut FixedRng(E_R))
                .unwrap_err();
            expect_point_or_auth(&m, err, "responder (msg1)", i);

            let mut m = msg2;
            m[i] ^= flip;
            let (waiting, _) = Initiator::start_qr(&f.identity, &psk, &mut FixedRng(E_I)).unwrap();
            let err = waiting.finish(&m).unwrap_err();
            expect_point_or_auth(&m, err, "initiator (msg2)", i);
        }
    }
    // Wrong lengths are malformed, whichever side.
    for len in [0, 65, 80, 82, 200] {
        let m = vec![4u8; len];
        let (waiting, _) = Initiator::start_qr(&f.identity, &psk, &mut FixedRng(E_I)).unwrap();
        assert_eq!(
            waiting.finish(&m).unwrap_err(),
            Malformed::HandshakeLength {
                expected: 81,
                got: len
            }
            .into()
        );
        assert_eq!(
            Responder::respond_qr(&f.identity.public_key(), &psk, &m, &mut FixedRng(E_R))
                .unwrap_err(),
            Malformed::HandshakeLength {
                expected: 81,
                got: len
            }
            .into()
        );
    }
    // A different PSK (another advert) fails authentication, not anything else.
    let other = eid::EidPlaintext {
        nonce: [0; 10],
        ..f.plaintext.clone()
    }
    .psk(f.secret.expose());
    assert_eq!(
        Responder::respond_qr(&f.identity.public_key(), &other, &msg1, &mut FixedRng(E_R))
            .unwrap_err(),
        PeerMisbehaved::HandshakeAuthentication.into()
    );
}

#[test]
fn tampering_with_any_frame_byte_is_detected() {
    let f = qr_fixture();
    let (_, _, mut desktop, mut phone) = qr_handshake(&f);
    let frame = phone
        .encrypt_message(&Message::Ctap(vec![0, 0xa1, 1, 2]))
        .unwrap();
    for i in 0..frame.len() {
        let mut m = frame.clone();
        m[i] ^= 0x04;
        assert_eq!(
            desktop.decrypt(&m).unwrap_err(),
            PeerMisbehaved::FrameAuthentication.into(),
            "byte {i}"
        );
    }
    assert!(matches!(
        desktop.decrypt(&frame[..16]).unwrap_err(),
        Error::Malformed(Malformed::Frame(_))
    ));
    assert_eq!(
        desktop.decrypt(&frame[..40]).unwrap_err(),
        PeerMisbehaved::FrameAuthentication.into()
    );
    // Failures did not advance the counter: the genuine frame still decrypts, once.
    assert!(desktop.decrypt(&frame).is_ok());
    assert_eq!(
        desktop.decrypt(&frame).unwrap_err(),
        PeerMisbehaved::FrameAuthentication.into(),
        "replay"
    );
    // Out of order: frame 2 before frame 1.
    let a = phone.encrypt(b"a").unwrap();
    let b = phone.encrypt(b"b").unwrap();
    assert_eq!(
        desktop.decrypt(&b).unwrap_err(),
        PeerMisbehaved::FrameAuthentication.into()
    );
    assert_eq!(desktop.decrypt(&a).unwrap().as_slice(), b"a");
    assert_eq!(desktop.decrypt(&b).unwrap().as_slice(), b"b");
    // Unknown message types and a shutdown with a payload are errors.
    let t9 = phone.encrypt(&[9, 1]).unwrap();
    assert_eq!(
        desktop.decrypt_message(&t9).unwrap_err(),
        PeerMisbehaved::UnknownMessageType(9).into()
    );
    // Frames in the other direction use the other key.
    let mine = desktop.encrypt(b"x").unwrap();
    assert_eq!(
        desktop.decrypt(&mine).unwrap_err(),
        PeerMisbehaved::FrameAuthentication.into()
    );
}

#[test]
fn sequence_limit_is_enforced() {
    let f = qr_fixture();
    let (_, _, mut desktop, mut phone) = qr_handshake(&f);
    phone.dangerous_set_sequence_for_testing((1 << 24) - 1, 0);
    desktop.dangerous_set_sequence_for_testing(0, (1 << 24) - 1);
    let last = phone.encrypt(b"last").unwrap();
    assert_eq!(desktop.decrypt(&last).unwrap().as_slice(), b"last");
    assert_eq!(
        phone.encrypt(b"one more").unwrap_err(),
        Misuse::SequenceExhausted.into()
    );
    assert_eq!(
        desktop.decrypt(&last).unwrap_err(),
        Misuse::SequenceExhausted.into()
    );
}

//! Every parser of outside input is fed truncations, bit flips and random bytes from a seeded
//! generator; none may panic, and each must answer with `Ok` or a typed error. Stable and
//! bounded: the same inputs every run (docs/STYLE.md#tests).

use hybrid_protocol::ctap::{
    AuthenticatorData, GetAssertionRequest, GetAssertionResponse, GetInfo, MakeCredentialRequest,
    MakeCredentialResponse,
};
use hybrid_protocol::handshake::{Initiator, Responder};
use hybrid_protocol::keys::{EidKey, IdentityKey, Psk, QrSecret};
use hybrid_protocol::linking::ClientPayload;
use hybrid_protocol::medium::AdvertLine;
use hybrid_protocol::qr::{self, QrCode, RequestType};
use hybrid_protocol::session::{Message, PostHandshake};
use hybrid_protocol::tunnel::TunnelPath;
use hybrid_protocol::{cbor, eid};
use rand::{Rng, RngCore, SeedableRng};

fn variants(seed: &[u8], rng: &mut rand::rngs::StdRng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in 0..=seed.len() {
        out.push(seed[..n].to_vec());
    }
    for i in 0..seed.len() * 8 {
        let mut v = seed.to_vec();
        v[i / 8] ^= 1 << (i % 8);
        out.push(v);
    }
    for _ in 0..300 {
        let len = rng.gen_range(0..seed.len() + 40);
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        out.push(v);
    }
    // Random splices of the seed with random bytes keep enough structure to go deep.
    for _ in 0..300 {
        let mut v = seed.to_vec();
        if !v.is_empty() {
            let at = rng.gen_range(0..v.len());
            v[at] = rng.gen();
            let cut = rng.gen_range(at..=v.len());
            v.truncate(cut);
            v.extend((0..rng.gen_range(0..8)).map(|_| rng.gen::<u8>()));
        }
        out.push(v);
    }
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let id = IdentityKey::random(&mut rng);
    let qr = QrCode::new(
        id.public_key(),
        QrSecret::random(&mut rng).unwrap(),
        1_700_000_000,
        true,
        RequestType::MakeCredential,
    );
    let ph = hex::decode("a101585ca50182684649444f5f325f30684649444f5f325f3102826c6465766963655075624b65796370726603500000000000000000000000000000000004a262726bf5627576f50983656361626c656668796272696468696e7465726e616c").unwrap();
    let payload = ClientPayload {
        link_id: [1; 8],
        client_nonce: [2; 16],
        request_type: RequestType::GetAssertion,
    };
    let mc = MakeCredentialRequest {
        client_data_hash: [3; 32],
        rp: hybrid_protocol::ctap::RelyingParty {
            id: "example.com".into(),
            name: Some("Example".into()),
        },
        user: hybrid_protocol::ctap::User {
            id: vec![1, 2],
            name: Some("a".into()),
            display_name: Some("A".into()),
        },
        algorithms: vec![-7],
        exclude_list: vec![hybrid_protocol::ctap::CredentialDescriptor {
            id: vec![9; 16],
            transports: None,
        }],
        extensions: Default::default(),
        options: Default::default(),
    };
    vec![qr.to_cbor(), ph, payload.to_cbor(), mc.to_cbor()]
}

#[test]
fn parsers_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let key = EidKey::from_bytes([7; 64]);
    let mut advert = eid::encrypt(
        &key,
        &eid::EidPlaintext {
            nonce: [1; 10],
            routing_id: hybrid_protocol::tunnel::RoutingId([1, 2, 3]),
            domain: hybrid_protocol::tunnel::Domain(0),
        },
    )
    .to_vec();
    advert.extend_from_slice(&[0xa1, 0x01, 0x18, 0x80]);
    let mut all = seeds();
    all.push(advert);
    let mut inputs = 0usize;
    for seed in &all {
        for v in variants(seed, &mut rng) {
            inputs += 1;
            let _ = cbor::decode(&v);
            let _ = QrCode::from_cbor(&v);
            let _ = qr::digits_decode(&String::from_utf8_lossy(&v));
            let _ = QrCode::parse(&format!("FIDO:/{}", qr::digits_encode(&v)));
            let _ = eid::decrypt(&key, &v);
            let _ = PostHandshake::decode(&v);
            let _ = Message::decode(&v);
            let _ = ClientPayload::from_cbor(&v);
            let _ = ClientPayload::from_header(&hex::encode(&v));
            let _ = GetInfo::from_cbor(&v);
            let _ = MakeCredentialRequest::from_cbor(&v);
            let _ = GetAssertionRequest::from_cbor(&v);
            let _ = MakeCredentialResponse::from_cbor(&v);
            let _ = GetAssertionResponse::from_cbor(&v);
            let _ = AuthenticatorData::parse(&v);
            let text = String::from_utf8_lossy(&v);
            let _ = TunnelPath::parse(&format!("/cable/{text}"));
            let _ = text.parse::<AdvertLine>();
        }
    }
    assert!(inputs > 3000, "ran {inputs} inputs");
}

#[test]
fn handshake_and_frames_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xface);
    let id = IdentityKey::random(&mut rng);
    let psk = Psk::from_bytes([4; 32]);
    let (_, msg1) = Initiator::start_qr(&id, &psk, &mut rng).unwrap();
    let (mut phone, msg2) = Responder::respond_qr(&id.public_key(), &psk, &msg1, &mut rng).unwrap();
    let frame = phone.encrypt(&[1, 0, 0xa0]).unwrap();
    for v in variants(&msg1, &mut rng) {
        assert!(Responder::respond_qr(&id.public_key(), &psk, &v, &mut rng).is_err() || v == msg1);
        assert!(Responder::respond_linked(&id, &psk, &v, &mut rng).is_err());
    }
    for v in variants(&msg2, &mut rng) {
        let (waiting, _) = Initiator::start_qr(&id, &psk, &mut rng).unwrap();
        let _ = waiting.finish(&v);
    }
    let (_, _, mut desktop) = {
        let (waiting, m1) = Initiator::start_qr(&id, &psk, &mut rng).unwrap();
        let (p, m2) = Responder::respond_qr(&id.public_key(), &psk, &m1, &mut rng).unwrap();
        (p, m2, waiting.finish(&m2).unwrap())
    };
    for v in variants(&frame, &mut rng) {
        let _ = desktop.decrypt(&v);
        let _ = desktop.decrypt_message(&v);
    }
}

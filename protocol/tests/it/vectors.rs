//! Known-answer vectors from `tests/vectors/hybrid-primitives.json` (a copy of the project's shared
//! vectors; docs/PROTOCOL.md#vectors), loaded into typed structs and compared byte for byte.

use hybrid_protocol::ctap::GetInfo;
use hybrid_protocol::derive::{self, p256_from_seed, Purpose};
use hybrid_protocol::eid;
use hybrid_protocol::keys::{EidKey, QrSecret};
use hybrid_protocol::qr::{self, QrCode, RequestType};
use hybrid_protocol::session::{PostHandshake, Revision};
use hybrid_protocol::tunnel::{Domain, RoutingId, TunnelPath};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    digits: Vec<Digits>,
    digits_invalid: Vec<String>,
    derive: Vec<DeriveVector>,
    eid: EidVector,
    domains: Vec<DomainVector>,
    domains_invalid: Vec<u16>,
    qr_chrome: QrChrome,
    post_handshake_captures: Captures,
    p256_from_seed: Vec<SeedVector>,
}

#[derive(Deserialize)]
struct Digits {
    bytes: String,
    digits: String,
}

#[derive(Deserialize)]
struct DeriveVector {
    secret: String,
    salt: Option<String>,
    purpose: u32,
    length: usize,
    output: String,
}

#[derive(Deserialize)]
struct EidVector {
    qr_secret: String,
    tunnel_id: String,
    new_url: String,
    eid_key: String,
    advert: String,
    plaintext: String,
    nonce: String,
    routing_id: String,
    domain: u16,
    connect_url: String,
    psk: String,
}

#[derive(Deserialize)]
struct DomainVector {
    id: u16,
    domain: String,
}

#[derive(Deserialize)]
struct QrChrome {
    cbor: String,
    url: String,
}

#[derive(Deserialize)]
struct Captures {
    android: String,
    ios16: String,
}

#[derive(Deserialize)]
struct SeedVector {
    seed: String,
    private: String,
    public_compressed: Option<String>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("../vectors/hybrid-primitives.json")).expect("vectors parse")
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex in vectors")
}

fn purpose(n: u32) -> Purpose {
    match n {
        1 => Purpose::EidKey,
        2 => Purpose::TunnelId,
        3 => Purpose::Psk,
        4 => Purpose::PairedSecret,
        5 => Purpose::IdentityKeySeed,
        6 => Purpose::PerContactIdSecret,
        _ => panic!("unknown purpose {n}"),
    }
}

#[test]
fn digits_encode_and_decode() {
    let v = vectors();
    for d in &v.digits {
        assert_eq!(
            qr::digits_encode(&h(&d.bytes)),
            d.digits,
            "encode {}",
            d.bytes
        );
        assert_eq!(
            qr::digits_decode(&d.digits).unwrap(),
            h(&d.bytes),
            "decode {}",
            d.digits
        );
    }
    for bad in &v.digits_invalid {
        assert!(qr::digits_decode(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn derive_outputs() {
    for d in vectors().derive {
        let mut out = vec![0u8; d.length];
        let salt = d.salt.as_deref().map(h).unwrap_or_default();
        derive::derive(&h(&d.secret), &salt, purpose(d.purpose), &mut out);
        assert_eq!(hex::encode(out), d.output);
    }
}

#[test]
fn eid_decrypt_known_advert() {
    let e = vectors().eid;
    let secret = QrSecret::from_slice(&h(&e.qr_secret)).unwrap();
    assert_eq!(hex::encode(secret.tunnel_id().0), e.tunnel_id);
    assert_eq!(hex::encode(secret.eid_key().expose()), e.eid_key);
    let tunnel_id = secret.tunnel_id();
    let domain = Domain(e.domain).name().unwrap();
    assert_eq!(TunnelPath::New(tunnel_id).to_url(&domain), e.new_url);

    let matched = eid::decrypt(&secret.eid_key(), &h(&e.advert)).unwrap();
    assert_eq!(hex::encode(matched.plaintext_bytes()), e.plaintext);
    assert_eq!(hex::encode(matched.plaintext.nonce), e.nonce);
    assert_eq!(hex::encode(matched.plaintext.routing_id.0), e.routing_id);
    assert_eq!(matched.plaintext.domain, Domain(e.domain));
    assert_eq!(matched.suffix, None);
    assert_eq!(
        TunnelPath::Connect(matched.plaintext.routing_id, tunnel_id).to_url(&domain),
        e.connect_url
    );
    assert_eq!(hex::encode(matched.psk(secret.expose()).expose()), e.psk);
    // And the authenticator side: the same plaintext encrypts to the same advert.
    assert_eq!(
        hex::encode(eid::encrypt(&secret.eid_key(), &matched.plaintext)),
        e.advert
    );
    assert_eq!(
        hex::encode(matched.plaintext.psk(secret.expose()).expose()),
        e.psk
    );
}

#[test]
fn eid_rejections_and_suffix() {
    let e = vectors().eid;
    let key = EidKey::from_slice(&h(&e.eid_key)).unwrap();
    let advert = h(&e.advert);
    // A flipped ciphertext or tag bit is someone else's advert.
    for i in 0..20 {
        let mut a = advert.clone();
        a[i] ^= 0x01;
        assert!(matches!(
            eid::decrypt(&key, &a),
            Err(hybrid_protocol::Error::PeerMisbehaved(
                hybrid_protocol::error::PeerMisbehaved::AdvertNotOurs
            ))
        ));
    }
    assert!(eid::decrypt(&key, &advert[..19]).is_err());
    // Reserved byte and unknown domains are rejected after a valid tag.
    let mut pt = h(&e.plaintext);
    pt[0] = 0x80;
    let reserved = eid::encrypt_raw(&key, &pt.clone().try_into().unwrap());
    assert!(matches!(
        eid::decrypt(&key, &reserved),
        Err(hybrid_protocol::Error::PeerMisbehaved(
            hybrid_protocol::error::PeerMisbehaved::AdvertReservedBits(0x80)
        ))
    ));
    for bad in vectors().domains_invalid {
        let p = eid::EidPlaintext {
            nonce: [1; 10],
            routing_id: RoutingId([1, 2, 3]),
            domain: Domain(bad),
        };
        assert!(
            eid::decrypt(&key, &eid::encrypt(&key, &p)).is_err(),
            "domain {bad} accepted"
        );
    }
    // A CTAP 2.3 suffix is parsed; an ill-formed one is ignored and the advert kept.
    let mut with_suffix = advert.clone();
    with_suffix.extend_from_slice(&[0xa1, 0x01, 0x18, 0x80]);
    assert_eq!(
        eid::decrypt(&key, &with_suffix)
            .unwrap()
            .suffix
            .unwrap()
            .l2cap_psm,
        Some(0x80)
    );
    let mut junk = advert.clone();
    junk.extend_from_slice(&[0xff, 0x00]);
    let m = eid::decrypt(&key, &junk).unwrap();
    assert_eq!(m.suffix, None);
    assert_eq!(hex::encode(m.plaintext_bytes()), e.plaintext);
}

#[test]
fn domain_names() {
    let v = vectors();
    for d in &v.domains {
        assert_eq!(Domain(d.id).name().unwrap(), d.domain, "domain {}", d.id);
        assert!(Domain(d.id).is_known());
    }
    for bad in &v.domains_invalid {
        assert!(Domain(*bad).name().is_err());
        assert!(!Domain(*bad).is_known());
    }
}

#[test]
fn chrome_qr_code() {
    let q = vectors().qr_chrome;
    let parsed = QrCode::parse(&q.url).unwrap();
    assert_eq!(hex::encode(parsed.to_cbor()), q.cbor);
    assert_eq!(
        parsed.to_url(),
        q.url,
        "re-encoding must reproduce the digits exactly"
    );
    assert_eq!(parsed.known_domains, 2);
    assert_eq!(parsed.created_at, Some(1666589051));
    assert_eq!(parsed.supports_linking, Some(true));
    assert_eq!(parsed.request_type, RequestType::MakeCredential);
    assert_eq!(
        hex::encode(parsed.identity_key.to_compressed()),
        &q.cbor[8..74]
    );
    // The prefix is case-insensitive.
    assert_eq!(
        QrCode::parse(&q.url.replacen("FIDO", "fido", 1)).unwrap(),
        parsed
    );
}

#[test]
fn post_handshake_captures_decode_to_get_info() {
    let c = vectors().post_handshake_captures;
    let (android, rev) = PostHandshake::decode(&h(&c.android)).unwrap();
    assert_eq!(rev, Revision::One);
    assert_eq!(android.features, vec!["ctap"]);
    let info = GetInfo::from_cbor(android.get_info.as_ref().unwrap()).unwrap();
    assert_eq!(info.versions, vec!["FIDO_2_0", "FIDO_2_1"]);
    assert_eq!(info.extensions, vec!["devicePubKey", "prf"]);
    assert_eq!(info.aaguid, [0; 16]);
    assert_eq!(info.options.get("rk"), Some(&true));
    assert_eq!(info.options.get("uv"), Some(&true));
    assert_eq!(info.transports, vec!["cable", "hybrid", "internal"]);

    let (ios, _) = PostHandshake::decode(&h(&c.ios16)).unwrap();
    let info = GetInfo::from_cbor(ios.get_info.as_ref().unwrap()).unwrap();
    assert_eq!(info.versions, vec!["FIDO_2_0"]);
    assert_eq!(hex::encode(info.aaguid), "f24a8e70d0d3f82c293732523cc4de5a");
    assert_eq!(info.transports, vec!["internal", "hybrid"]);
    assert_eq!(info.options.len(), 2);

    // The same message in revision 0 (512-byte padding, LE16 count) decodes to the same fields.
    let legacy = android.encode_revision0_for_testing();
    assert_eq!(legacy.len() % 512, 0);
    let (again, rev) = PostHandshake::decode(&legacy).unwrap();
    assert_eq!(rev, Revision::Zero);
    assert_eq!(again.get_info, android.get_info);
}

#[test]
fn p256_keys_from_seeds() {
    for s in vectors().p256_from_seed {
        let k = p256_from_seed(&h(&s.seed));
        assert_eq!(hex::encode(*k.to_bytes()), s.private, "seed {}", s.seed);
        if let Some(p) = s.public_compressed {
            assert_eq!(hex::encode(k.public_key().to_compressed()), p);
        }
    }
}

//! Parser behaviour that interop depends on: what a QR code, CTAP message or linking map must
//! contain, what is ignored, and the messages a person sees when something is wrong.

use ciborium::value::Value;
use hybrid_protocol::cbor::{self, bytes, int, text};
use hybrid_protocol::ctap::{
    self, flags, AttestationStatement, AttestedCredential, AuthenticatorData, CredentialDescriptor,
    GetAssertionRequest, GetAssertionResponse, GetInfo, MakeCredentialRequest,
    MakeCredentialResponse, PrfInputs, PrfValues, RelyingParty, Status, User,
};
use hybrid_protocol::keys::{IdentityKey, QrSecret};
use hybrid_protocol::qr::{DataChannels, QrCode, RequestType};
use hybrid_protocol::session::{Message, PostHandshake};

fn key() -> IdentityKey {
    IdentityKey::from_bytes(&[3; 32]).unwrap()
}

fn qr_map(entries: Vec<(Value, Value)>) -> String {
    format!(
        "FIDO:/{}",
        hybrid_protocol::qr::digits_encode(&cbor::encode(&Value::Map(entries)))
    )
}

fn base() -> Vec<(Value, Value)> {
    vec![
        (int(0), bytes(&key().public_key().to_compressed())),
        (int(1), bytes(&[9; 16])),
    ]
}

#[test]
fn qr_emits_keys_zero_to_five_and_round_trips() {
    let q = QrCode::new(
        key().public_key(),
        QrSecret::from_bytes([9; 16]),
        1_700_000_000,
        false,
        RequestType::GetAssertion,
    );
    let c = q.to_cbor();
    assert_eq!(c[0], 0xa6, "six keys");
    // docs/PROTOCOL.md#cbor's example layout: … 02 02 03 1a6553f100 04 f4 05 626761
    assert!(
        hex::encode(&c).ends_with("0202031a6553f10004f405626761"),
        "{}",
        hex::encode(&c)
    );
    assert_eq!(QrCode::parse(&q.to_url()).unwrap(), q);
    assert!(q.to_url().starts_with("FIDO:/"));
}

#[test]
fn qr_strictness_and_leniency() {
    // Minimal: keys 0 and 1 only; defaults fill the rest.
    let q = QrCode::parse(&qr_map(base())).unwrap();
    assert_eq!(q.known_domains, 0);
    assert_eq!(q.supports_linking, None);
    assert_eq!(q.request_type, RequestType::GetAssertion);
    // Unknown keys, unknown hints and both forms of key 6 are accepted.
    let mut m = base();
    m.extend([
        (int(5), text("zz")),
        (int(6), Value::Bool(true)),
        (int(1000), text("x")),
    ]);
    let q = QrCode::parse(&qr_map(m)).unwrap();
    assert_eq!(q.request_type, RequestType::GetAssertion);
    assert_eq!(q.data_channels, DataChannels::Bool(true));
    let mut m = base();
    m.push((int(6), Value::Array(vec![int(0), int(1)])));
    assert_eq!(
        QrCode::parse(&qr_map(m)).unwrap().data_channels,
        DataChannels::Channels(vec![0, 1])
    );
    // Errors a person can act on.
    let mut m = base();
    m[1] = (int(1), bytes(&[9; 12]));
    assert_eq!(
        QrCode::parse(&qr_map(m)).unwrap_err().to_string(),
        "QR code: key 1 must be a 16-byte string, got 12 bytes"
    );
    let mut m = base();
    m[0] = (int(0), bytes(&key().public_key().to_uncompressed()));
    assert!(QrCode::parse(&qr_map(m))
        .unwrap_err()
        .to_string()
        .contains("key 0 must be a 33-byte"));
    let mut bad_point = key().public_key().to_compressed();
    bad_point[1..].fill(0xff);
    let mut m = base();
    m[0] = (int(0), bytes(&bad_point));
    assert!(QrCode::parse(&qr_map(m))
        .unwrap_err()
        .to_string()
        .contains("not a valid compressed P-256 point"));
    assert!(QrCode::parse(&qr_map(vec![base()[1].clone()]))
        .unwrap_err()
        .to_string()
        .contains("key 0 is missing"));
    assert!(QrCode::parse("https://example.com")
        .unwrap_err()
        .to_string()
        .contains("must start with"));
    assert!(QrCode::parse("FIDO:/12").is_err());
    // Non-canonical CBOR (keys out of order) is rejected as Chromium does.
    let mut raw = vec![0xa2];
    raw.extend(cbor::encode(&int(1)));
    raw.extend(cbor::encode(&bytes(&[9; 16])));
    raw.extend(cbor::encode(&int(0)));
    raw.extend(cbor::encode(&bytes(&key().public_key().to_compressed())));
    assert!(QrCode::from_cbor(&raw)
        .unwrap_err()
        .to_string()
        .contains("not canonical"));
}

fn mc() -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash: [1; 32],
        rp: RelyingParty {
            id: "example.com".into(),
            name: Some("Example".into()),
        },
        user: User {
            id: vec![7; 16],
            name: Some("alice".into()),
            display_name: Some("Alice".into()),
        },
        algorithms: vec![ctap::ES256, -257],
        exclude_list: vec![CredentialDescriptor {
            id: vec![5; 32],
            transports: Some(vec!["hybrid".into()]),
        }],
        extensions: ctap::MakeCredentialExtensions {
            cred_props: true,
            prf: true,
            prf_eval: None,
        },
        options: ctap::Options {
            rk: Some(true),
            up: None,
            uv: Some(true),
        },
    }
}

#[test]
fn ctap_requests_round_trip_and_are_canonical() {
    let m = mc();
    let enc = m.to_cbor();
    assert_eq!(cbor::decode(&enc).map(|v| cbor::encode(&v)).unwrap(), enc);
    assert_eq!(MakeCredentialRequest::from_cbor(&enc).unwrap(), m);
    // pubKeyCredParams entries are {"alg", "type"} in canonical order (Play Services rejects others).
    assert!(hex::encode(&enc).contains("a263616c672664747970656a7075626c69632d6b6579"));

    let g = GetAssertionRequest {
        rp_id: "example.com".into(),
        client_data_hash: [2; 32],
        allow_list: vec![CredentialDescriptor {
            id: vec![1, 2, 3],
            transports: None,
        }],
        prf: Some(PrfInputs {
            eval: Some(PrfValues {
                first: vec![1; 32],
                second: Some(vec![2; 32]),
            }),
            eval_by_credential: vec![(
                vec![1, 2, 3],
                PrfValues {
                    first: vec![3; 32],
                    second: None,
                },
            )],
        }),
        options: ctap::Options {
            rk: None,
            up: Some(true),
            uv: Some(true),
        },
    };
    assert_eq!(GetAssertionRequest::from_cbor(&g.to_cbor()).unwrap(), g);
}

#[test]
fn ctap_requests_missing_fields_give_statuses() {
    let full = cbor::decode(&mc().to_cbor()).unwrap();
    let Value::Map(entries) = full else {
        unreachable!()
    };
    for drop_key in 1..=4 {
        let m: Vec<_> = entries
            .iter()
            .filter(|(k, _)| *k != int(drop_key))
            .cloned()
            .collect();
        let err = MakeCredentialRequest::from_cbor(&cbor::encode(&Value::Map(m))).unwrap_err();
        assert_eq!(
            err.status,
            Status::MissingParameter,
            "without key {drop_key}: {err}"
        );
    }
    let err = MakeCredentialRequest::from_cbor(&[0xa1, 0x02, 0x01, 0x01, 0x01]).unwrap_err();
    assert_eq!(err.status, Status::InvalidCbor);
    let err = GetAssertionRequest::from_cbor(&cbor::encode(&Value::Map(vec![(int(1), int(5))])))
        .unwrap_err();
    assert_eq!(err.status, Status::CborUnexpectedType);
}

#[test]
fn authenticator_data_and_responses_round_trip() {
    let cred_key = IdentityKey::from_bytes(&[8; 32]).unwrap().public_key();
    let ad = AuthenticatorData {
        rp_id_hash: [4; 32],
        flags: flags::UP | flags::UV | flags::BE | flags::BS,
        sign_count: 0,
        attested_credential: Some(AttestedCredential {
            aaguid: [6; 16],
            credential_id: vec![1; 16],
            public_key: cred_key,
        }),
        extensions: Some(Value::Map(vec![(
            text("credProps"),
            Value::Map(vec![(text("rk"), Value::Bool(true))]),
        )])),
    };
    let raw = ad.to_bytes();
    assert_eq!(
        raw[32],
        flags::UP | flags::UV | flags::BE | flags::BS | flags::AT | flags::ED
    );
    let parsed = AuthenticatorData::parse(&raw).unwrap();
    assert_eq!(parsed.attested_credential, ad.attested_credential);
    assert!(
        AuthenticatorData::parse(&[&raw[..], &[0]].concat()).is_err(),
        "trailing byte"
    );
    assert!(
        AuthenticatorData::parse(&raw[..raw.len() - 1]).is_err(),
        "truncated"
    );

    let r = MakeCredentialResponse {
        attestation: AttestationStatement::packed_self(-7, vec![0x30, 1, 2]),
        auth_data: raw.clone(),
        prf_enabled: Some(true),
        prf_results: Some(PrfValues {
            first: vec![5; 32],
            second: Some(vec![6; 32]),
        }),
    };
    assert_eq!(MakeCredentialResponse::from_cbor(&r.to_cbor()).unwrap(), r);
    let a = GetAssertionResponse {
        credential: CredentialDescriptor {
            id: vec![1; 16],
            transports: Some(vec!["internal".into(), "cable".into()]),
        },
        auth_data: raw,
        signature: vec![0x30, 2],
        user: Some(User {
            id: vec![7; 16],
            name: Some(String::new()),
            display_name: Some(String::new()),
        }),
        user_selected: Some(true),
        prf_results: Some(PrfValues {
            first: vec![1; 32],
            second: None,
        }),
    };
    assert_eq!(GetAssertionResponse::from_cbor(&a.to_cbor()).unwrap(), a);
    let (status, body) = ctap::split_response(&[0x27]).unwrap();
    assert_eq!(status, Status::OperationDenied);
    assert!(body.is_empty());
    assert_eq!(Status::from_byte(0x99), Status::Other);
}

#[test]
fn get_info_round_trip_and_post_handshake_rules() {
    let info = GetInfo {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
        extensions: vec!["prf".into()],
        aaguid: [0xaa; 16],
        options: [("rk".to_string(), true), ("uv".to_string(), true)].into(),
        transports: vec!["internal".into(), "hybrid".into()],
        algorithms: vec![-7],
    };
    assert_eq!(GetInfo::from_cbor(&info.to_cbor()).unwrap(), info);
    // Features absent means ["ctap"], which requires getInfo.
    let bare = cbor::encode(&Value::Map(vec![]));
    assert!(PostHandshake::decode(&bare)
        .unwrap_err()
        .to_string()
        .contains("sent no getInfo"));
    let dc_only = cbor::encode(&Value::Map(vec![(int(3), Value::Array(vec![text("dc")]))]));
    assert!(!PostHandshake::decode(&dc_only).unwrap().0.supports_ctap());
    // Message types.
    assert_eq!(Message::decode(&[0]).unwrap(), Message::Shutdown);
    assert!(Message::decode(&[0, 1]).is_err());
    assert!(Message::decode(&[]).is_err());
    assert!(Message::decode(&[1]).is_err());
    assert_eq!(
        Message::decode(&[3, b'{', b'}']).unwrap(),
        Message::Json("{}".into())
    );
}

#[test]
fn a_qr_dated_an_hour_off_or_at_the_epoch_reads_back_with_its_date() {
    // A desktop clock an hour behind or ahead, or never set: the QR code reads back whole,
    // its date as the desktop wrote it.
    const T: u64 = 1_795_878_245;
    for at in [T - 3600, T + 3600, 0, u64::from(u32::MAX) + 1] {
        let q = QrCode::new(
            key().public_key(),
            QrSecret::from_bytes([9; 16]),
            at,
            true,
            RequestType::MakeCredential,
        );
        let back = QrCode::parse(&q.to_url()).unwrap();
        assert_eq!(back.created_at, Some(at));
        assert_eq!(back, q, "dated {at}");
    }
}

#[test]
fn cut_off_qr_codes_say_so() {
    assert!(QrCode::parse("FIDO:/")
        .unwrap_err()
        .to_string()
        .contains("cut off"));
    let q = QrCode::new(
        key().public_key(),
        QrSecret::from_bytes([9; 16]),
        1,
        true,
        RequestType::GetAssertion,
    );
    let url = q.to_url();
    let cut = &url[..url.len() - 17];
    assert_eq!(
        QrCode::parse(cut).unwrap_err().to_string(),
        "QR code: truncated: the data ends inside an item"
    );
}

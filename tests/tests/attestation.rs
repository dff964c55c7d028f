//! Attestation through the bridge: every phone-sim mode reaches webauthn-rs, and with
//! `attestation: "direct"` exactly as the phone made it (the bridge does not judge it).

use super::*;
use hybrid_tests::rp::Registration;
use webauthn_rs_core::proto::{
    AttestationCaList, AttestationCaListBuilder, AttestationConveyancePreference,
    AttestationFormat, ParsedAttestationData,
};

fn direct() -> Registration {
    Registration {
        attestation: AttestationConveyancePreference::Direct,
        ..Registration::default()
    }
}

/// Registers with `attestation` on the phone and `how` at the RP; returns the bridge's
/// JSON and the RP's pending state, and the stack (holding the phone's attestation CA).
async fn ceremony(
    dir: &tempfile::TempDir,
    attestation: Attestation,
    how: Registration,
) -> (Stack, hybrid_tests::rp::PendingRegistration, String) {
    let mut stack = stack(
        dir,
        PhoneConfig {
            attestation,
            ..PhoneConfig::default()
        },
    )
    .await;
    stack.config.links = None;
    let pending = rp()
        .start_registration_with(b"att-user", "att-user", how)
        .expect("registration options");
    let options = RegistrationOptions::from_json(&pending.options_json, Some(ORIGIN))
        .expect("bridge reads the RP's JSON");
    let run = stack
        .register(&options, &Silent)
        .await
        .unwrap_or_else(|e| panic!("{attestation:?}: the ceremony failed: {e}"));
    let json = serde_json::to_string(&run.bridge.json).unwrap();
    (stack, pending, json)
}

fn attestation_object(json: &str) -> (String, Vec<u8>) {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v["response"]["attestationObject"].as_str().unwrap())
        .unwrap();
    let value = hybrid_protocol::cbor::decode(&raw).unwrap();
    let m = hybrid_protocol::cbor::MapReader::new("attestationObject", &value).unwrap();
    let fmt = m
        .get_text_key("fmt")
        .unwrap()
        .as_text()
        .unwrap()
        .to_string();
    let st = hybrid_protocol::cbor::encode(m.get_text_key("attStmt").unwrap());
    (fmt, st)
}

/// A CA list trusting `ca_der` for phone-sim's AAGUID.
fn trusting(ca_der: &[u8]) -> AttestationCaList {
    // The AAGUID as the uuid type webauthn-rs takes (parsed via serde: no uuid dependency).
    let aaguid = serde_json::from_value(serde_json::Value::String(format!(
        "{}-{}-{}-{}-{}",
        hex(&phone_sim::AAGUID[..4]),
        hex(&phone_sim::AAGUID[4..6]),
        hex(&phone_sim::AAGUID[6..8]),
        hex(&phone_sim::AAGUID[8..10]),
        hex(&phone_sim::AAGUID[10..])
    )))
    .expect("a UUID");
    let mut b = AttestationCaListBuilder::new();
    b.insert_device_der(ca_der, aaguid, "phone-sim".into(), Default::default())
        .expect("the CA certificate parses");
    b.build()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_and_packed_self_verify_as_sent() {
    for (mode, want) in [
        (Attestation::None, AttestationFormat::None),
        (Attestation::Packed, AttestationFormat::Packed),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_stack, pending, json) = ceremony(&dir, mode, direct()).await;
        let cred = rp()
            .finish_registration(&pending, &json)
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(cred.attestation_format, want, "{mode:?}");
        if mode == Attestation::Packed {
            assert!(matches!(
                cred.attestation.data,
                ParsedAttestationData::Self_
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_with_a_certificate_chain_verifies_against_the_phones_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (stack, pending, json) = ceremony(&dir, Attestation::PackedX5c, direct()).await;
    let (fmt, st) = attestation_object(&json);
    assert_eq!(fmt, "packed");
    let ca = stack
        .phone()
        .unwrap()
        .attestation_ca()
        .expect("the phone made its attestation CA");
    // The chain webauthn-rs verified is the phone's attestation certificate.
    let rp = rp();
    let cred = rp
        .finish_registration_trusting(&pending, &json, Some(&trusting(ca.ca_der())))
        .expect("webauthn-rs verifies the x5c chain to the phone's CA");
    assert_eq!(cred.attestation_format, AttestationFormat::Packed);
    let ParsedAttestationData::Basic(chain) = &cred.attestation.data else {
        panic!("basic attestation expected: {:?}", cred.attestation.data)
    };
    assert_eq!(chain.len(), 1);
    let x5c0 =
        hybrid_protocol::cbor::encode(&ciborium::value::Value::Bytes(ca.leaf_der().to_vec()));
    assert!(
        st.windows(x5c0.len()).any(|w| w == x5c0),
        "attStmt carries the phone's certificate byte for byte"
    );
    // Untrusted attestation (no CA list) is accepted too: the signature and WebAuthn §8.2.1
    // certificate requirements are still checked.
    rp.finish_registration(&pending, &json)
        .expect("webauthn-rs accepts the packed x5c statement without a trust list");
    // Another CA is not trusted: the chain is really checked.
    let mut other =
        phone_sim::Phone::open(dir.path().join("other.json"), PhoneConfig::default()).unwrap();
    let other = other.make_attestation_ca().unwrap();
    let err = rp
        .finish_registration_trusting(&pending, &json, Some(&trusting(other.ca_der())))
        .expect_err("a chain to another CA is not trusted");
    assert!(
        format!("{err:#}").contains("AttestationChainNotTrusted"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_format_reaches_the_rp_verbatim_and_is_stripped_when_not_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (_stack, pending, json) = ceremony(&dir, Attestation::Unknown, direct()).await;
    let (fmt, _) = attestation_object(&json);
    assert_eq!(
        fmt,
        phone_sim::UNKNOWN_FORMAT,
        "the bridge carried it unjudged"
    );
    // webauthn-rs knows only registered formats: its verdict on this one is "not
    // supported" (the RP's call, not the client's).
    let err = rp()
        .finish_registration(&pending, &json)
        .expect_err("webauthn-rs does not know the format");
    assert!(
        format!("{err:#}").contains("AttestationNotSupported"),
        "{err:#}"
    );

    // The RP did not ask for attestation: the bridge strips it as browsers do, and the
    // registration verifies.
    let dir = tempfile::tempdir().unwrap();
    let (_stack, pending, json) =
        ceremony(&dir, Attestation::Unknown, Registration::default()).await;
    assert_eq!(attestation_object(&json), ("none".into(), vec![0xa0]));
    let cred = rp()
        .finish_registration(&pending, &json)
        .expect("webauthn-rs accepts the stripped registration");
    assert_eq!(cred.attestation_format, AttestationFormat::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_verifies_when_the_rp_asks_for_no_attestation() {
    for mode in [
        Attestation::None,
        Attestation::Packed,
        Attestation::PackedX5c,
        Attestation::Unknown,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_stack, pending, json) = ceremony(&dir, mode, Registration::default()).await;
        assert_eq!(attestation_object(&json).0, "none", "{mode:?}: stripped");
        rp().finish_registration(&pending, &json)
            .unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
    }
}

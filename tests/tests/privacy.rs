//! What the relay sees: a QR registration, a sign-in and a linked sign-in cross a recording
//! proxy in front of the relay, and no RP ID, user, credential, signature or QR secret is
//! among the messages and headers it kept.

use super::*;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() >= 4 && hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_only_ever_sees_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let relay = tunnel_server::RunningServer::start(tunnel_server::Config::default())
        .await
        .unwrap();
    let (url, capture) = tap::start(relay.ws_url()).await.unwrap();
    let mut stack = Stack::with_relay_url(
        dir.path().to_path_buf(),
        Some(relay),
        url,
        PhoneConfig::default(),
        knobs(),
    )
    .unwrap();
    let rp = rp();
    let qr = std::sync::Mutex::new(None);
    let record = |e: &Event, _: Duration| {
        if let Event::QrCode { url } = e {
            *qr.lock().unwrap() = Some(url.clone());
        }
    };
    let pending = rp
        .start_registration(b"heidi-user-handle", "heidi@example")
        .unwrap();
    let options = RegistrationOptions::from_json(&pending.options_json, Some(ORIGIN)).unwrap();
    let reg = stack
        .register(&options, &record)
        .await
        .expect("registration");
    let cred = rp
        .finish_registration(&pending, &serde_json::to_string(&reg.bridge.json).unwrap())
        .unwrap();
    let (pending, options) = sign_in_options(&rp, &cred);
    let auth = stack.sign_in(&options, &Silent).await.expect("sign-in");
    rp.finish_authentication(&pending, &serde_json::to_string(&auth.bridge.json).unwrap())
        .unwrap();
    let link = reg.bridge.outcome.linked.clone().expect("linked");
    let (_, options) = sign_in_options(&rp, &cred);
    stack
        .sign_in_linked(&link, &options, &Silent)
        .await
        .expect("linked sign-in");

    let seen = capture.all_bytes();
    assert!(
        capture.message_count() >= 12,
        "three ceremonies crossed the tap"
    );
    let qr = hybrid_protocol::qr::QrCode::parse(&qr.into_inner().unwrap().unwrap()).unwrap();
    let reg_json = serde_json::to_value(&reg.bridge.json).unwrap();
    let auth_json = serde_json::to_value(&auth.bridge.json).unwrap();
    let b64 = |v: &serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let client_data = b64(&reg_json["response"]["clientDataJSON"]);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("RP ID", RP_ID.as_bytes().to_vec()),
        ("user name", b"heidi@example".to_vec()),
        ("user handle", b"heidi-user-handle".to_vec()),
        ("credential ID", b64(&reg_json["rawId"])),
        ("clientDataHash", sha256(&client_data)),
        (
            "authenticator data",
            b64(&auth_json["response"]["authenticatorData"]),
        ),
        (
            "assertion signature",
            b64(&auth_json["response"]["signature"]),
        ),
        ("QR secret", qr.secret.expose().to_vec()),
        ("EID key", qr.secret.eid_key().expose().to_vec()),
        (
            "QR identity key",
            qr.identity_key.to_compressed()[1..].to_vec(),
        ),
        ("credential public key", cred_public_x(&reg_json)),
    ];
    for (what, bytes) in secrets {
        assert!(
            !contains(&seen, &bytes),
            "the relay saw the {what} in the clear"
        );
    }
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).to_vec()
}

fn cred_public_x(reg: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    let att = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(reg["response"]["attestationObject"].as_str().unwrap())
        .unwrap();
    let v = hybrid_protocol::cbor::decode(&att).unwrap();
    let m = hybrid_protocol::cbor::MapReader::new("att", &v).unwrap();
    let Some(ciborium::value::Value::Bytes(ad)) = m.get_text_key("authData") else {
        panic!("authData")
    };
    let ad = hybrid_protocol::ctap::AuthenticatorData::parse(ad).unwrap();
    ad.attested_credential.unwrap().public_key.to_uncompressed()[1..33].to_vec()
}

//! Each CTAP operation with its flags and extensions; signatures checked with p256.

use hybrid_protocol::ctap::{
    flags, AttestationStatement, AuthenticatorData, GetAssertionResponse, MakeCredentialResponse,
    Options, PrfInputs, PrfValues, Status,
};
use hybrid_protocol::keys::PublicKey;
use p256::ecdsa::signature::Verifier as _;
use phone_sim::{Approve, Attestation, CredentialKind, Operation, Store};
use sha2::{Digest as _, Sha256};

use crate::harness::*;

fn verify(key: &PublicKey, auth_data: &[u8], cdh: &[u8; 32], der: &[u8]) {
    let vk = p256::ecdsa::VerifyingKey::from(key.as_p256());
    let sig = p256::ecdsa::Signature::from_der(der).expect("DER signature");
    let mut msg = auth_data.to_vec();
    msg.extend_from_slice(cdh);
    vk.verify(&msg, &sig).expect("signature verifies");
}

/// Registers a synced credential and returns (credential ID, public key).
async fn register(
    relay_url: &str,
    f: &Files,
    rk: bool,
    attestation: Attestation,
) -> (Vec<u8>, PublicKey) {
    register_as(relay_url, f, rk, attestation, CredentialKind::Synced).await
}

/// The P-256 public key in a DER certificate (the point after the P-256 SPKI prefix).
fn cert_key(der: &[u8]) -> PublicKey {
    let prefix = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    let at = der
        .windows(prefix.len())
        .position(|w| w == prefix)
        .expect("a P-256 SubjectPublicKeyInfo")
        + prefix.len();
    PublicKey::from_sec1(&der[at..at + 65]).unwrap()
}

/// Registers a credential of `kind` and returns (credential ID, public key).
async fn register_as(
    relay_url: &str,
    f: &Files,
    rk: bool,
    attestation: Attestation,
    kind: CredentialKind,
) -> (Vec<u8>, PublicKey) {
    let mut req = mc_request("example.com", b"user-1", rk);
    req.extensions.prf = true;
    req.extensions.cred_props = true;
    let cfg = phone_sim::PhoneConfig {
        attestation,
        credential_kind: kind,
        ..config(relay_url)
    };
    let run = one_request(relay_url, f, cfg, MC, &req.to_cbor()).await;
    let (status, body) = run.response.unwrap();
    assert_eq!(status, Status::Ok);
    let resp = MakeCredentialResponse::from_cbor(&body).unwrap();
    assert_eq!(resp.prf_enabled, Some(true));
    let ad = AuthenticatorData::parse(&resp.auth_data).unwrap();
    assert_eq!(
        ad.rp_id_hash,
        <[u8; 32]>::from(Sha256::digest(b"example.com"))
    );
    let backup = match kind {
        CredentialKind::Synced => flags::BE | flags::BS,
        CredentialKind::DeviceBound => 0,
    };
    assert_eq!(ad.flags, flags::UP | flags::UV | backup | flags::AT);
    assert_eq!(ad.sign_count, 0);
    assert!(
        ad.extensions.is_none(),
        "credProps is a client extension: no authenticator output"
    );
    let cred = ad.attested_credential.unwrap();
    assert_eq!(cred.aaguid, phone_sim::AAGUID);
    let st = &resp.attestation;
    let sig = || match st.get("sig") {
        Some(ciborium::value::Value::Bytes(b)) => b.clone(),
        other => panic!("no sig: {other:?}"),
    };
    let alg = || st.get("alg").cloned();
    match (st.format(), attestation) {
        ("none", Attestation::None) => assert_eq!(st, &AttestationStatement::none()),
        ("packed", Attestation::Packed) => {
            assert_eq!(alg(), Some(ciborium::value::Value::Integer((-7).into())));
            assert!(st.get("x5c").is_none(), "self attestation has no chain");
            verify(
                &cred.public_key,
                &resp.auth_data,
                &req.client_data_hash,
                &sig(),
            );
        }
        ("packed", Attestation::PackedX5c) => {
            assert_eq!(alg(), Some(ciborium::value::Value::Integer((-7).into())));
            let Some(ciborium::value::Value::Array(chain)) = st.get("x5c") else {
                panic!("no x5c: {st:?}")
            };
            let Some(ciborium::value::Value::Bytes(leaf)) = chain.first() else {
                panic!("x5c[0] is not a certificate")
            };
            let leaf_key = cert_key(leaf);
            assert_ne!(leaf_key, cred.public_key, "signed by the attestation key");
            verify(&leaf_key, &resp.auth_data, &req.client_data_hash, &sig());
            let aaguid_ext = [&[0x04, 16][..], &phone_sim::AAGUID[..]].concat();
            assert!(
                leaf.windows(aaguid_ext.len()).any(|w| w == aaguid_ext),
                "the certificate carries the AAGUID extension"
            );
        }
        (phone_sim::UNKNOWN_FORMAT, Attestation::Unknown) => {
            verify(
                &cred.public_key,
                &resp.auth_data,
                &req.client_data_hash,
                &sig(),
            );
        }
        other => panic!("unexpected attestation {other:?}: {st:?}"),
    }
    assert_eq!(
        run.outcome.unwrap().operation,
        Operation::MadeCredential {
            rp_id: "example.com".into(),
            credential_id: cred.credential_id.clone()
        }
    );
    let stored = Store::load(&f.store).unwrap();
    assert_eq!(stored.credentials().last().unwrap().discoverable, rk);
    assert_eq!(stored.credentials().last().unwrap().kind, kind);
    (cred.credential_id, cred.public_key)
}

#[tokio::test]
async fn make_credential_and_get_assertion_discoverable_with_prf() {
    let relay = relay().await;
    let f = files();
    let (id, key) = register(&relay.ws_url(), &f, true, Attestation::Packed).await;

    // Discoverable: empty allowList, prf eval with two salts.
    let mut ga = ga_request("example.com", &[]);
    ga.prf = Some(PrfInputs {
        eval: Some(PrfValues {
            first: vec![1; 32],
            second: Some(vec![2; 32]),
        }),
        eval_by_credential: Vec::new(),
    });
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        GA,
        &ga.to_cbor(),
    )
    .await;
    let (status, body) = run.response.unwrap();
    assert_eq!(status, Status::Ok);
    let resp = GetAssertionResponse::from_cbor(&body).unwrap();
    assert_eq!(resp.credential.id, id);
    assert_eq!(resp.user_selected, Some(true));
    let user = resp.user.unwrap();
    assert_eq!(user.id, b"user-1");
    let ad = AuthenticatorData::parse(&resp.auth_data).unwrap();
    assert_eq!(ad.flags, flags::UP | flags::UV | flags::BE | flags::BS);
    assert_eq!(ad.sign_count, 0);
    verify(&key, &resp.auth_data, &ga.client_data_hash, &resp.signature);
    let prf1 = resp.prf_results.unwrap();
    assert_eq!(prf1.first.len(), 32);
    assert_ne!(Some(prf1.first.clone()), prf1.second);

    // Same salt again → same output; evalByCredential wins over eval.
    let mut ga2 = ga_request("example.com", &[&id]);
    ga2.prf = Some(PrfInputs {
        eval: Some(PrfValues {
            first: vec![9; 32],
            second: None,
        }),
        eval_by_credential: vec![(
            id.clone(),
            PrfValues {
                first: vec![1; 32],
                second: None,
            },
        )],
    });
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        GA,
        &ga2.to_cbor(),
    )
    .await;
    let resp = GetAssertionResponse::from_cbor(&run.response.unwrap().1).unwrap();
    assert_eq!(resp.user.unwrap().id, b"user-1", "a passkey's user handle");
    assert_eq!(resp.user_selected, None);
    assert_eq!(resp.prf_results.unwrap().first, prf1.first);
    assert_eq!(
        run.outcome.unwrap().operation,
        Operation::GotAssertion {
            rp_id: "example.com".into(),
            credential_id: id
        }
    );
}

/// Phones return a passkey's user handle even when the relying party names the credential:
/// sites look the account up by it, and Chromium requires it for a discoverable credential.
#[tokio::test]
async fn a_passkey_named_in_the_allow_list_still_returns_its_user_handle() {
    let relay = relay().await;
    let f = files();
    let (id, key) = register(&relay.ws_url(), &f, true, Attestation::None).await;
    let ga = ga_request("example.com", &[b"other", &id]);
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        GA,
        &ga.to_cbor(),
    )
    .await;
    let (status, body) = run.response.unwrap();
    assert_eq!(status, Status::Ok);
    let resp = GetAssertionResponse::from_cbor(&body).unwrap();
    verify(&key, &resp.auth_data, &ga.client_data_hash, &resp.signature);
    assert_eq!(resp.credential.id, id);
    let user = resp
        .user
        .expect("the user handle of a discoverable credential");
    assert_eq!(user.id, b"user-1");
    assert_eq!(
        (user.name, user.display_name),
        (None, None),
        "only the handle: the relying party already chose the account"
    );
    assert_eq!(
        resp.user_selected, None,
        "no account was chosen on the phone"
    );
}

#[tokio::test]
async fn non_discoverable_needs_the_allow_list() {
    let relay = relay().await;
    let f = files();
    let (id, key) = register(&relay.ws_url(), &f, false, Attestation::None).await;
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        GA,
        &ga_request("example.com", &[]).to_cbor(),
    )
    .await;
    assert_eq!(run.response.unwrap().0, Status::NoCredentials);
    assert_eq!(
        run.outcome.unwrap().operation,
        Operation::Refused {
            status: Status::NoCredentials
        }
    );
    let ga = ga_request("example.com", &[b"other", &id]);
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        GA,
        &ga.to_cbor(),
    )
    .await;
    let (s, body) = run.response.unwrap();
    assert_eq!(s, Status::Ok);
    let resp = GetAssertionResponse::from_cbor(&body).unwrap();
    verify(&key, &resp.auth_data, &ga.client_data_hash, &resp.signature);
    assert_eq!(
        resp.user, None,
        "a server-side credential has no user to return"
    );
    // Another RP never sees it.
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        GA,
        &ga_request("evil.example", &[&id]).to_cbor(),
    )
    .await;
    assert_eq!(run.response.unwrap().0, Status::NoCredentials);
}

#[tokio::test]
async fn exclude_list_deny_and_silent_assertions() {
    let relay = relay().await;
    let f = files();
    let (id, _) = register(&relay.ws_url(), &f, true, Attestation::None).await;
    let before = std::fs::read(&f.store).unwrap();

    let mut req = mc_request("example.com", b"user-2", true);
    req.exclude_list = vec![hybrid_protocol::ctap::CredentialDescriptor {
        id: id.clone(),
        transports: None,
    }];
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        MC,
        &req.to_cbor(),
    )
    .await;
    assert_eq!(run.response.unwrap().0, Status::CredentialExcluded);
    assert_eq!(std::fs::read(&f.store).unwrap(), before, "store untouched");

    let deny = phone_sim::PhoneConfig {
        approve: Approve::Deny,
        ..config(&relay.ws_url())
    };
    let run = one_request(
        &relay.ws_url(),
        &f,
        deny.clone(),
        MC,
        &mc_request("example.com", b"u3", true).to_cbor(),
    )
    .await;
    assert_eq!(run.response.unwrap().0, Status::OperationDenied);
    assert_eq!(
        run.outcome.unwrap().operation,
        Operation::Refused {
            status: Status::OperationDenied
        }
    );
    assert_eq!(std::fs::read(&f.store).unwrap(), before, "store untouched");
    let run = one_request(
        &relay.ws_url(),
        &f,
        deny.clone(),
        GA,
        &ga_request("example.com", &[]).to_cbor(),
    )
    .await;
    assert_eq!(run.response.unwrap().0, Status::OperationDenied);

    // up=false: answered without asking (even with Deny), no UP/UV flags.
    let mut ga = ga_request("example.com", &[&id]);
    ga.options = Options {
        up: Some(false),
        ..Options::default()
    };
    let run = one_request(&relay.ws_url(), &f, deny, GA, &ga.to_cbor()).await;
    let (s, body) = run.response.unwrap();
    assert_eq!(s, Status::Ok);
    let ad = AuthenticatorData::parse(&GetAssertionResponse::from_cbor(&body).unwrap().auth_data)
        .unwrap();
    assert_eq!(ad.flags, flags::BE | flags::BS);

    // Unsupported algorithm.
    let mut req = mc_request("example.com", b"u4", true);
    req.algorithms = vec![-8];
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        MC,
        &req.to_cbor(),
    )
    .await;
    assert_eq!(run.response.unwrap().0, Status::UnsupportedAlgorithm);
    assert_eq!(std::fs::read(&f.store).unwrap(), before, "store untouched");
}

#[tokio::test]
async fn every_attestation_mode_and_credential_kind_and_assertions_keep_the_kind() {
    let relay = relay().await;
    let f = files();
    let mut made = Vec::new();
    for (attestation, kind) in [
        (Attestation::PackedX5c, CredentialKind::DeviceBound),
        (Attestation::Unknown, CredentialKind::Synced),
        (Attestation::PackedX5c, CredentialKind::Synced),
        (Attestation::Unknown, CredentialKind::DeviceBound),
    ] {
        let (id, key) = register_as(&relay.ws_url(), &f, true, attestation, kind).await;
        made.push((id, key, kind));
    }
    // Each credential signs with the BE/BS it was created with, whatever the phone's
    // setting for new credentials is now.
    for (id, key, kind) in made {
        let ga = ga_request("example.com", &[&id]);
        let cfg = phone_sim::PhoneConfig {
            credential_kind: CredentialKind::DeviceBound,
            ..config(&relay.ws_url())
        };
        let run = one_request(&relay.ws_url(), &f, cfg, GA, &ga.to_cbor()).await;
        let resp = GetAssertionResponse::from_cbor(&run.response.unwrap().1).unwrap();
        let ad = AuthenticatorData::parse(&resp.auth_data).unwrap();
        let backup = match kind {
            CredentialKind::Synced => flags::BE | flags::BS,
            CredentialKind::DeviceBound => 0,
        };
        assert_eq!(ad.flags, flags::UP | flags::UV | backup, "{kind:?}");
        verify(&key, &resp.auth_data, &ga.client_data_hash, &resp.signature);
    }
}

#[tokio::test]
async fn a_request_without_rp_name_or_display_name_creates_a_credential() {
    // What USB platforms send, passed on by `hybrid-bridge key`: Firefox omits rp.name and
    // user.displayName, libfido2 and OpenSSH omit rp.name. CTAP makes both optional, and so
    // does Chromium's phone (PublicKeyCredentialRpEntity/UserEntity::CreateFromCBORValue).
    let relay = relay().await;
    let f = files();
    let mut req = mc_request("ssh:", b"user-1", false);
    req.rp.name = None;
    req.user.display_name = None;
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        MC,
        &req.to_cbor(),
    )
    .await;
    let (status, body) = run.response.unwrap();
    assert_eq!(status, Status::Ok);
    let resp = MakeCredentialResponse::from_cbor(&body).unwrap();
    let ad = AuthenticatorData::parse(&resp.auth_data).unwrap();
    assert_eq!(ad.rp_id_hash, <[u8; 32]>::from(Sha256::digest(b"ssh:")));
    // Without a user name at all, too.
    req.user.name = None;
    let run = one_request(
        &relay.ws_url(),
        &f,
        config(&relay.ws_url()),
        MC,
        &req.to_cbor(),
    )
    .await;
    assert_eq!(run.response.unwrap().0, Status::Ok);
}

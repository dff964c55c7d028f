//! Each CTAP operation with its flags and extensions; signatures checked with p256.

use hybrid_protocol::ctap::{
    flags, AttestationStatement, AuthenticatorData, GetAssertionResponse, MakeCredentialResponse,
    Options, PrfInputs, PrfValues, Status,
};
use hybrid_protocol::keys::PublicKey;
use p256::ecdsa::signature::Verifier as _;
use phone_sim::{Approve, Attestation, Operation, Store};
use sha2::{Digest as _, Sha256};

use crate::harness::*;

fn verify(key: &PublicKey, auth_data: &[u8], cdh: &[u8; 32], der: &[u8]) {
    let vk = p256::ecdsa::VerifyingKey::from(key.as_p256());
    let sig = p256::ecdsa::Signature::from_der(der).expect("DER signature");
    let mut msg = auth_data.to_vec();
    msg.extend_from_slice(cdh);
    vk.verify(&msg, &sig).expect("signature verifies");
}

/// Registers a credential and returns (credential ID, public key).
async fn register(
    relay_url: &str,
    f: &Files,
    rk: bool,
    attestation: Attestation,
) -> (Vec<u8>, PublicKey) {
    let mut req = mc_request("example.com", b"user-1", rk);
    req.extensions.prf = true;
    req.extensions.cred_props = true;
    let cfg = phone_sim::PhoneConfig {
        attestation,
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
    assert_eq!(
        ad.flags,
        flags::UP | flags::UV | flags::BE | flags::BS | flags::AT
    );
    assert_eq!(ad.sign_count, 0);
    assert!(
        ad.extensions.is_none(),
        "credProps is a client extension: no authenticator output"
    );
    let cred = ad.attested_credential.unwrap();
    assert_eq!(cred.aaguid, phone_sim::AAGUID);
    match (&resp.attestation, attestation) {
        (AttestationStatement::None, Attestation::None) => {}
        (AttestationStatement::PackedSelf { alg, sig }, Attestation::Packed) => {
            assert_eq!(*alg, -7);
            verify(
                &cred.public_key,
                &resp.auth_data,
                &req.client_data_hash,
                sig,
            );
        }
        other => panic!("unexpected attestation {other:?}"),
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
    assert_eq!(resp.user, None, "no user for an allowList request");
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

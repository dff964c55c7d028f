//! The `prf` extension through the bridge and the phone: `eval`, `evalByCredential` and
//! first-use evaluation on create, each result checked against the others.

use super::*;
use bridge::webauthn::b64url;

/// The options object of an RP's JSON, bare or under `publicKey`.
fn public_key(json: &mut serde_json::Value) -> &mut serde_json::Value {
    if json.get("publicKey").is_some() {
        &mut json["publicKey"]
    } else {
        json
    }
}

/// Signs in with the RP's options plus `extensions.prf = prf`; returns the page's
/// `prf` client extension output after webauthn-rs accepts the assertion.
async fn sign_in_with(
    stack: &mut Stack,
    rp: &RelyingParty,
    cred: &webauthn_rs_core::proto::Credential,
    prf: serde_json::Value,
) -> serde_json::Value {
    let (pending, _) = sign_in_options(rp, cred);
    let mut json: serde_json::Value = serde_json::from_str(&pending.options_json).unwrap();
    public_key(&mut json)["extensions"] = serde_json::json!({ "prf": prf });
    let options = AuthenticationOptions::from_json(&json.to_string(), Some(ORIGIN))
        .expect("bridge reads the options");
    let run = stack.sign_in(&options, &Silent).await.expect("sign-in");
    rp.finish_authentication(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
        .expect("webauthn-rs accepts the assertion");
    run.bridge.json.client_extension_results["prf"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_by_credential_for_the_allowed_credential_is_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = stack(&dir, PhoneConfig::default()).await;
    let rp = rp();
    let cred = register(&mut stack, &rp, "vault").await;
    let id = b64url(cred.cred_id.as_ref());
    let (salt_a, salt_b) = (b64url(b"salt a"), b64url(b"salt b"));

    let by_eval = sign_in_with(
        &mut stack,
        &rp,
        &cred,
        serde_json::json!({"eval": {"first": salt_a}}),
    )
    .await;
    let first = by_eval["results"]["first"].clone();
    assert!(first.is_string(), "eval gives a result: {by_eval}");

    let by_credential = sign_in_with(
        &mut stack,
        &rp,
        &cred,
        serde_json::json!({"evalByCredential": {id.clone(): {"first": salt_a}}}),
    )
    .await;
    assert_eq!(
        by_credential, by_eval,
        "the same salt gives the same result by credential"
    );

    let other = sign_in_with(
        &mut stack,
        &rp,
        &cred,
        serde_json::json!({
            "eval": {"first": salt_a},
            "evalByCredential": {id: {"first": salt_b, "second": salt_a}},
        }),
    )
    .await;
    assert_ne!(
        other["results"]["first"], first,
        "the credential's own salt wins over eval"
    );
    assert_eq!(other["results"]["second"], first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_on_create_gives_the_results_a_sign_in_gives() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = stack(&dir, PhoneConfig::default()).await;
    let rp = rp();
    let salt = b64url(b"first use");
    let (pending, _) = registration_options(&rp, "vault");
    let mut json: serde_json::Value = serde_json::from_str(&pending.options_json).unwrap();
    public_key(&mut json)["extensions"] = serde_json::json!({"prf": {"eval": {"first": salt}}});
    let options = RegistrationOptions::from_json(&json.to_string(), Some(ORIGIN))
        .expect("bridge reads the options");
    let run = stack
        .register(&options, &Silent)
        .await
        .expect("registration");
    let created = run.bridge.json.client_extension_results["prf"].clone();
    let cred = rp
        .finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
        .expect("webauthn-rs accepts the registration");
    assert_eq!(created["enabled"], true, "{created}");

    let signed_in = sign_in_with(
        &mut stack,
        &rp,
        &cred,
        serde_json::json!({"eval": {"first": salt}}),
    )
    .await;
    assert!(signed_in["results"]["first"].is_string(), "{signed_in}");
    assert_eq!(created["results"], signed_in["results"], "{created}");
}

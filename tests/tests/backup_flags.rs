//! Synced passkeys and device-bound credentials: the RP sees BE/BS as the phone set them,
//! at registration and at every sign-in.

use super::*;
use hybrid_tests::rp::Registration;

async fn register_and_sign_in(kind: CredentialKind, reject_synced: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = stack(
        &dir,
        PhoneConfig {
            credential_kind: kind,
            ..PhoneConfig::default()
        },
    )
    .await;
    let rp = rp();
    let how = Registration {
        reject_synced,
        ..Registration::default()
    };
    let pending = rp
        .start_registration_with(b"bk-user", "bk-user", how)
        .unwrap();
    let options = RegistrationOptions::from_json(&pending.options_json, Some(ORIGIN)).unwrap();
    let run = stack.register(&options, &Silent).await.expect("ceremony");
    let json = serde_json::to_string(&run.bridge.json).unwrap();
    let result = rp.finish_registration(&pending, &json);
    let synced = kind == CredentialKind::Synced;
    if reject_synced && synced {
        let err = result.expect_err("an RP refusing synced passkeys refuses this one");
        assert!(
            format!("{err:#}").contains("CredentialMayNotBeHardwareBound"),
            "{err:#}"
        );
        return;
    }
    let cred = result.unwrap_or_else(|e| panic!("{kind:?}: {e:#}"));
    assert_eq!(cred.backup_eligible, synced, "{kind:?}: BE at registration");
    assert_eq!(cred.backup_state, synced, "{kind:?}: BS at registration");

    let (pending, options) = sign_in_options(&rp, &cred);
    let run = stack.sign_in(&options, &Silent).await.expect("sign-in");
    let result = rp
        .finish_authentication(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
        .expect("webauthn-rs accepts the assertion (BE must not change)");
    assert_eq!(result.backup_eligible(), synced, "{kind:?}: BE at sign-in");
    assert_eq!(result.backup_state(), synced, "{kind:?}: BS at sign-in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_passkey_has_be_and_bs_set() {
    register_and_sign_in(CredentialKind::Synced, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_bound_credential_has_be_and_bs_clear() {
    register_and_sign_in(CredentialKind::DeviceBound, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rp_refusing_synced_passkeys_takes_only_device_bound_ones() {
    register_and_sign_in(CredentialKind::DeviceBound, true).await;
    register_and_sign_in(CredentialKind::Synced, true).await;
}

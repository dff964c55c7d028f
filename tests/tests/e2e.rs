//! End-to-end scenarios across the relay, the simulated phone and the bridge, all in-process
//! on loopback. Every registration and assertion the bridge produces is verified by
//! `webauthn-rs-core` in strict mode (origin, RP ID, challenge, user verification). This root
//! holds what the scenario modules share (the relying party, the stack, the RP's options as
//! the bridge reads them) and lists the modules, one file each beside it.

use std::time::Duration;

use bridge::progress::{Event, Phase, Silent};
use bridge::webauthn::{AuthenticationOptions, RegistrationOptions};
use bridge::BridgeError;
use hybrid_demo::Stack;
use hybrid_tests::rp::RelyingParty;
use hybrid_tests::tap::{self, Cut, CutEnd};
use phone_sim::{AdvertFault, Approve, Attestation, CredentialKind, MediumKnobs, PhoneConfig};

const RP_ID: &str = "e2e.hybrid-bridge.test";
const ORIGIN: &str = "https://e2e.hybrid-bridge.test";

fn rp() -> RelyingParty {
    RelyingParty::new(RP_ID, ORIGIN).expect("relying party")
}

fn knobs() -> MediumKnobs {
    MediumKnobs {
        interval: Duration::from_millis(20),
        ..MediumKnobs::default()
    }
}

async fn stack(dir: &tempfile::TempDir, phone: PhoneConfig) -> Stack {
    Stack::start(dir.path().to_path_buf(), phone, knobs())
        .await
        .expect("stack starts")
}

/// Registers through the QR flow and verifies with webauthn-rs; returns the RP's credential.
async fn register(
    stack: &mut Stack,
    rp: &RelyingParty,
    user: &str,
) -> webauthn_rs_core::proto::Credential {
    let (pending, options) = registration_options(rp, user);
    let run = stack
        .register(&options, &Silent)
        .await
        .expect("registration ceremony");
    let json = serde_json::to_string(&run.bridge.json).unwrap();
    rp.finish_registration(&pending, &json)
        .expect("webauthn-rs accepts the registration")
}

fn sign_in_options(
    rp: &RelyingParty,
    cred: &webauthn_rs_core::proto::Credential,
) -> (
    hybrid_tests::rp::PendingAuthentication,
    AuthenticationOptions,
) {
    let pending = rp
        .start_authentication(vec![cred.clone()])
        .expect("authentication options");
    let options = AuthenticationOptions::from_json(&pending.options_json, Some(ORIGIN))
        .expect("bridge reads the RP's JSON");
    (pending, options)
}

/// The RP's registration options for `user`, as the bridge reads them.
fn registration_options(
    rp: &RelyingParty,
    user: &str,
) -> (hybrid_tests::rp::PendingRegistration, RegistrationOptions) {
    let pending = rp
        .start_registration(user.as_bytes(), user)
        .expect("registration options");
    let options = RegistrationOptions::from_json(&pending.options_json, Some(ORIGIN))
        .expect("bridge reads the RP's JSON");
    (pending, options)
}

mod attestation;
mod backup_flags;
mod ble_channel;
mod failures;
mod faults;
mod key;
mod leaving_after_the_answer;
mod linked;
mod prf;
mod privacy;
mod qr_flow;
mod relay_limits;
mod tidy;

//! End-to-end scenarios across the relay, the simulated phone and the bridge, all in-process
//! on loopback. Every registration and assertion the bridge produces is verified by
//! `webauthn-rs-core` in strict mode (origin, RP ID, challenge, user verification).

use std::time::Duration;

use bridge::progress::{Event, Phase, Silent};
use bridge::webauthn::{AuthenticationOptions, RegistrationOptions};
use bridge::BridgeError;
use hybrid_demo::Stack;
use hybrid_tests::rp::RelyingParty;
use hybrid_tests::tap::{self, Cut};
use phone_sim::{AdvertFault, Approve, MediumKnobs, PhoneConfig};

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

mod qr_flow {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn register_then_sign_in_verified_by_webauthn_rs() {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = stack(&dir, PhoneConfig::default()).await;
        let rp = rp();
        let cred = register(&mut stack, &rp, "alice").await;
        let (pending, options) = sign_in_options(&rp, &cred);
        let run = stack
            .sign_in(&options, &Silent)
            .await
            .expect("sign-in ceremony");
        let result = rp
            .finish_authentication(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
            .expect("webauthn-rs accepts the assertion");
        assert!(result.user_verified(), "UV must be reported");
        assert_eq!(result.cred_id(), &cred.cred_id);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_ceremony_reuses_nothing_from_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = stack(
            &dir,
            PhoneConfig {
                link: false,
                ..PhoneConfig::default()
            },
        )
        .await;
        stack.config.links = None;
        let rp = rp();
        let urls = std::sync::Mutex::new(Vec::<String>::new());
        let record = |e: &Event, _: Duration| {
            if let Event::QrCode { url } = e {
                urls.lock().unwrap().push(url.clone());
            }
        };
        let mut lines_before = 0;
        let mut adverts = Vec::new();
        for user in ["first", "second"] {
            let (pending, options) = registration_options(&rp, user);
            let run = stack.register(&options, &record).await.expect("ceremony");
            rp.finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
                .expect("webauthn-rs accepts it");
            let text = std::fs::read_to_string(stack.adverts()).unwrap();
            let lines: Vec<String> = text
                .lines()
                .skip(lines_before)
                .map(str::to_string)
                .collect();
            lines_before += lines.len();
            adverts.push(lines);
        }
        let urls = urls.into_inner().unwrap();
        assert_eq!(urls.len(), 2);
        let (a, b) = (
            hybrid_protocol::qr::QrCode::parse(&urls[0]).unwrap(),
            hybrid_protocol::qr::QrCode::parse(&urls[1]).unwrap(),
        );
        assert_ne!(
            a.identity_key, b.identity_key,
            "a fresh identity key per ceremony"
        );
        assert_ne!(a.secret, b.secret, "a fresh QR secret per ceremony");
        assert_ne!(
            a.secret.tunnel_id(),
            b.secret.tunnel_id(),
            "a fresh tunnel per ceremony"
        );
        assert!(!adverts[0].is_empty() && !adverts[1].is_empty());
        assert!(
            adverts[1].iter().all(|l| !adverts[0].contains(l)),
            "no advert is repeated"
        );
        // The first ceremony's adverts do not decrypt under the second ceremony's key.
        for l in &adverts[0] {
            let line: hybrid_protocol::medium::AdvertLine = l.parse().unwrap();
            assert!(hybrid_protocol::eid::decrypt(&b.secret.eid_key(), &line.data).is_err());
        }
        assert_eq!(stack.phone().unwrap().store().credentials().len(), 2);
    }
}

mod linked {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn linked_phone_signs_in_without_a_qr_code() {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = stack(
            &dir,
            PhoneConfig {
                name: "Pixel".into(),
                ..PhoneConfig::default()
            },
        )
        .await;
        let rp = rp();
        let (pending, options) = registration_options(&rp, "bob");
        let run = stack
            .register(&options, &Silent)
            .await
            .expect("registration");
        let cred = rp
            .finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
            .unwrap();
        let link = run
            .bridge
            .outcome
            .linked
            .clone()
            .expect("the QR session stored a verified link");
        assert_eq!(link, "Pixel");

        let (pending, options) = sign_in_options(&rp, &cred);
        let phases = std::sync::Mutex::new(Vec::new());
        let record = |e: &Event, _: Duration| {
            if let Event::Phase { phase } = e {
                phases.lock().unwrap().push(*phase);
            }
            assert!(
                !matches!(e, Event::QrCode { .. }),
                "a linked sign-in shows no QR code"
            );
        };
        let run = stack
            .sign_in_linked(&link, &options, &record)
            .await
            .expect("linked sign-in");
        rp.finish_authentication(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
            .expect("webauthn-rs accepts the linked assertion");
        assert!(phases.lock().unwrap().contains(&Phase::ContactingPhone));
    }
}

mod failures {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_phone_denying_is_a_clear_ctap_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = stack(
            &dir,
            PhoneConfig {
                approve: Approve::Deny,
                ..PhoneConfig::default()
            },
        )
        .await;
        let rp = rp();
        let (_, options) = registration_options(&rp, "carol");
        let err = stack
            .register(&options, &Silent)
            .await
            .err()
            .expect("a denial is an error");
        assert!(matches!(err, BridgeError::Ctap { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 7);
        assert!(err.to_string().contains("denied on the phone"), "{err}");
        assert!(
            stack.phone().unwrap().store().credentials().is_empty(),
            "nothing stored on denial"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tampered_advert_is_ignored_until_the_stage_times_out() {
        for fault in [
            AdvertFault::WrongKey,
            AdvertFault::CorruptTag,
            AdvertFault::ReservedBit,
            AdvertFault::UnknownDomain,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let phone = PhoneConfig {
                fault: Some(fault),
                timeout: Duration::from_secs(3),
                ..PhoneConfig::default()
            };
            let mut stack = stack(&dir, phone).await;
            stack.config.timeouts.advert = Duration::from_millis(800);
            let rp = rp();
            let (_, options) = registration_options(&rp, "dave");
            let err = stack
                .register(&options, &Silent)
                .await
                .err()
                .expect("no advert may match");
            assert!(
                matches!(
                    err,
                    BridgeError::Timeout {
                        phase: Phase::AwaitingAdvert,
                        ..
                    }
                ),
                "{fault:?}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("advert") || text.contains("phone"),
                "{fault:?}: message names the stage: {text}"
            );
            assert!(
                std::fs::read_to_string(stack.adverts())
                    .unwrap()
                    .lines()
                    .count()
                    > 0,
                "{fault:?}: the phone did advertise"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_qr_session_times_out_naming_the_stage() {
        let dir = tempfile::tempdir().unwrap();
        let phone = PhoneConfig {
            timeout: Duration::from_secs(2),
            ..PhoneConfig::default()
        };
        let slow = MediumKnobs {
            first_delay: Duration::from_millis(1500),
            ..knobs()
        };
        let mut stack = Stack::start(dir.path().to_path_buf(), phone, slow)
            .await
            .unwrap();
        stack.config.timeouts.advert = Duration::from_millis(500);
        let rp = rp();
        let (_, options) = registration_options(&rp, "erin");
        let err = stack
            .register(&options, &Silent)
            .await
            .err()
            .expect("the bridge gives up first");
        assert!(
            matches!(
                err,
                BridgeError::Timeout {
                    phase: Phase::AwaitingAdvert,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.exit_code(), 3);
    }

    async fn cut_stack(dir: &tempfile::TempDir, cut: Cut) -> Stack {
        let relay = tunnel_server::RunningServer::start(tunnel_server::Config::default())
            .await
            .unwrap();
        let (url, _) = tap::start_cutting(relay.ws_url(), Some(cut)).await.unwrap();
        Stack::with_relay_url(
            dir.path().to_path_buf(),
            Some(relay),
            url,
            PhoneConfig::default(),
            knobs(),
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_relay_closing_mid_ceremony_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        // The desktop's socket dies right after the handshake (msg1, msg2).
        let mut stack = cut_stack(
            &dir,
            Cut {
                path_prefix: "/cable/connect",
                after: 2,
            },
        )
        .await;
        stack.config.timeouts.handshake = Duration::from_secs(3);
        let rp = rp();
        let (_, options) = registration_options(&rp, "frank");
        let err = stack
            .register(&options, &Silent)
            .await
            .err()
            .expect("the ceremony cannot finish");
        assert!(
            matches!(
                err,
                BridgeError::Closed { .. }
                    | BridgeError::Relay(_)
                    | BridgeError::Timeout {
                        phase: Phase::Handshaking,
                        ..
                    }
            ),
            "{err:?}"
        );
        assert!(stack
            .phone()
            .map(|p| p.store().credentials().is_empty())
            .unwrap_or(true));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_phone_closing_early_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        // The phone's socket closes after msg1, msg2 and the post-handshake message.
        let mut stack = cut_stack(
            &dir,
            Cut {
                path_prefix: "/cable/new",
                after: 3,
            },
        )
        .await;
        let rp = rp();
        let (_, options) = registration_options(&rp, "grace");
        let err = stack
            .register(&options, &Silent)
            .await
            .err()
            .expect("the ceremony cannot finish");
        assert!(matches!(err, BridgeError::Closed { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 6);
        assert!(err.to_string().contains("closed"), "{err}");
    }
}

/// The relay closing tunnels on its own (limits).
mod relay_limits;

mod privacy {
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
}

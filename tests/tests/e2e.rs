//! End-to-end scenarios across the relay, the simulated phone and the bridge, all in-process
//! on loopback. Every registration and assertion the bridge produces is verified by
//! `webauthn-rs-core` in strict mode (origin, RP ID, challenge, user verification).

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

/// The CTAP 2.3 BLE data channel on the simulated medium (an L2CAP stand-in on Unix sockets
/// beside the advert file): the same sessions as through the relay, with no relay at all.
mod ble_channel {
    use super::*;
    use bridge::ChannelChoice;
    use hybrid_channel::ChannelKind;
    use phone_sim::BleChannel;

    fn channels(events: &[Event]) -> Vec<ChannelKind> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Channel { channel } => Some(*channel),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn register_and_sign_in_over_ble_with_no_relay_running() {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = stack(&dir, PhoneConfig::default()).await;
        stack.stop_relay().await;
        stack.config.channel = ChannelChoice::Ble;
        let rp = rp();
        let (pending, options) = registration_options(&rp, "offline");
        let seen = bridge::Recorder::default();
        let run = stack
            .register(&options, &seen)
            .await
            .expect("registration over BLE");
        let cred = rp
            .finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
            .expect("webauthn-rs accepts the registration");
        assert_eq!(run.bridge.outcome.channel, ChannelKind::Ble);
        assert_eq!(run.phone.channel, ChannelKind::Ble);
        assert_eq!(channels(&seen.events()), [ChannelKind::Ble]);
        assert!(seen.events().iter().any(|e| matches!(
            e,
            Event::AdvertMatched { l2cap_psm: Some(p), .. } if (0x80..=0xff).contains(p)
        )));
        let (pending, options) = sign_in_options(&rp, &cred);
        let run = stack
            .sign_in(&options, &Silent)
            .await
            .expect("sign-in over BLE");
        let result = rp
            .finish_authentication(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
            .expect("webauthn-rs accepts the assertion");
        assert_eq!(result.cred_id(), &cred.cred_id);
        assert_eq!(run.bridge.outcome.channel, ChannelKind::Ble);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_psm_falls_back_to_the_relay() {
        let dir = tempfile::tempdir().unwrap();
        let phone = PhoneConfig {
            ble_channel: BleChannel::Refuse,
            ..PhoneConfig::default()
        };
        let mut stack = stack(&dir, phone).await;
        stack.config.channel = ChannelChoice::Auto;
        let rp = rp();
        let (pending, options) = registration_options(&rp, "fallback");
        let seen = bridge::Recorder::default();
        let run = stack.register(&options, &seen).await.expect("registration");
        rp.finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
            .expect("webauthn-rs accepts the registration");
        assert_eq!(run.bridge.outcome.channel, ChannelKind::Relay);
        assert_eq!(channels(&seen.events()), [ChannelKind::Relay]);
        let reason = seen.events().into_iter().find_map(|e| match e {
            Event::ChannelFallback { reason } => Some(reason),
            _ => None,
        });
        assert!(
            reason.as_deref().is_some_and(|r| r.contains("PSM")),
            "{reason:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ble_only_fails_clearly_with_a_phone_that_does_not_offer_it() {
        let dir = tempfile::tempdir().unwrap();
        let phone = PhoneConfig {
            ble_channel: BleChannel::Off,
            ..PhoneConfig::default()
        };
        let mut stack = stack(&dir, phone).await;
        stack.config.channel = ChannelChoice::Ble;
        let (_, options) = registration_options(&rp(), "nope");
        let Err(e) = stack.register(&options, &Silent).await else {
            panic!("a BLE-only ceremony succeeded with a phone that offers no BLE channel");
        };
        assert!(matches!(e, BridgeError::Bluetooth(_)), "{e:?}");
        assert!(e.to_string().contains("did not offer"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_default_offers_no_ble_channel_and_uses_the_relay() {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = stack(&dir, PhoneConfig::default()).await;
        let rp = rp();
        let (pending, options) = registration_options(&rp, "default");
        let seen = bridge::Recorder::default();
        let run = stack.register(&options, &seen).await.expect("registration");
        rp.finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
            .expect("webauthn-rs accepts the registration");
        let qr = hybrid_protocol::qr::QrCode::parse(&seen.qr_url().unwrap()).unwrap();
        assert_eq!(qr.data_channels, hybrid_protocol::qr::DataChannels::Absent);
        assert_eq!(run.bridge.outcome.channel, ChannelKind::Relay);
        assert!(seen.events().iter().all(|e| !matches!(
            e,
            Event::AdvertMatched {
                l2cap_psm: Some(_),
                ..
            }
        )));
    }

    /// Adverts longer than 20 bytes (up to the 27 a legacy advert can carry) under UUIDs other
    /// than the two phones use: the authenticated 20 bytes decide.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_adverts_under_other_uuids_are_matched() {
        for (uuid, extra) in [
            (0x1234u16, vec![0xffu8]),
            (0xfde2, vec![0x5a; 7]),
            (0xfff9, vec![0xa0]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let phone = PhoneConfig {
                advert_uuid: uuid,
                advert_extra: extra.clone(),
                ..PhoneConfig::default()
            };
            let mut stack = stack(&dir, phone).await;
            let rp = rp();
            let (pending, options) = registration_options(&rp, "long");
            let run = stack
                .register(&options, &Silent)
                .await
                .expect("registration");
            rp.finish_registration(&pending, &serde_json::to_string(&run.bridge.json).unwrap())
                .expect("webauthn-rs accepts the registration");
            let line = std::fs::read_to_string(stack.adverts()).unwrap();
            let first: hybrid_protocol::medium::AdvertLine =
                line.lines().next().unwrap().parse().unwrap();
            assert_eq!((first.uuid16, first.data.len()), (uuid, 20 + extra.len()));
        }
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

    /// The relay holding a linked sign-in's tunnel goes away while the phone is being woken
    /// (the phone is offline here): the bridge says the relay connection was lost as soon as
    /// it happens, not, after the advert timeout, that the phone did not answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_lost_while_waking_the_phone_is_a_relay_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tunnel_server::Config::default();
        config.limits.shutdown_grace = Duration::from_millis(200);
        let relay = tunnel_server::RunningServer::start(config).await.unwrap();
        let url = relay.ws_url();
        let mut stack = Stack::with_relay_url(
            dir.path().to_path_buf(),
            Some(relay),
            url,
            PhoneConfig {
                name: "Pixel".into(),
                ..PhoneConfig::default()
            },
            knobs(),
        )
        .unwrap();
        let rp = rp();
        let cred = register(&mut stack, &rp, "erin").await;
        stack.config.timeouts.advert = Duration::from_secs(20);
        let (_, options) = sign_in_options(&rp, &cred);
        let mut scanner = bridge::scanner::AdvertFileScanner::new(stack.adverts()).unwrap();
        let started = std::time::Instant::now();
        let signing_in = bridge::webauthn::sign_in_linked(
            "Pixel",
            &options,
            &stack.config,
            &mut scanner,
            &Silent,
        );
        let relay = stack.relay.take().expect("the relay");
        let stop = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            relay.shutdown().await.unwrap();
        };
        let (result, ()) = tokio::join!(signing_in, stop);
        let err = result.expect_err("no phone answers");
        assert!(matches!(err, BridgeError::Relay(_)), "{err:?}");
        assert!(err.to_string().contains("relay"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "reported after {:?}, not at once",
            started.elapsed()
        );
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

    pub(super) async fn cut_stack(dir: &tempfile::TempDir, cut: Cut) -> Stack {
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
                sockets: usize::MAX,
                relay_side: CutEnd::Close,
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
                sockets: usize::MAX,
                relay_side: CutEnd::Close,
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

/// Once the answer has crossed, either side leaving without the hybrid shutdown message (a
/// close, the relay reporting the peer gone, a stream that just ends) is a success on both.
mod leaving_after_the_answer {
    use super::*;

    /// Messages a QR registration carries on one socket up to and including the phone's
    /// answer: Noise msg1 and msg2, the post-handshake message, the linking update (the stack's
    /// phone holds a contact ID), the request, the answer.
    const THROUGH_THE_ANSWER: usize = 6;

    async fn register_cut(path_prefix: &'static str, relay_side: CutEnd) {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = failures::cut_stack(
            &dir,
            Cut {
                path_prefix,
                after: THROUGH_THE_ANSWER,
                sockets: usize::MAX,
                relay_side,
            },
        )
        .await;
        let rp = rp();
        let (pending, options) = registration_options(&rp, "heidi");
        let run = stack
            .register(&options, &Silent)
            .await
            .expect("both sides count the ceremony a success");
        assert!(matches!(
            run.phone.operation,
            phone_sim::Operation::MadeCredential { .. }
        ));
        let json = serde_json::to_string(&run.bridge.json).unwrap();
        rp.finish_registration(&pending, &json)
            .expect("webauthn-rs accepts the registration");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_desktop_that_leaves_without_shutdown_after_the_answer() {
        // The desktop's socket is cut the moment the answer reached it: its shutdown never
        // crosses, its TCP stream ends, and the relay tells the phone its peer went away (1001).
        register_cut("/cable/connect", CutEnd::Drop).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_phone_that_leaves_right_after_its_answer() {
        // The phone's socket is cut right after its answer: the relay sees a normal close,
        // forwards the answer and then closes the desktop; the phone's own stream ends without
        // a close frame.
        register_cut("/cable/new", CutEnd::Close).await;
    }
}

/// The relay closing tunnels on its own (limits).
mod relay_limits;

/// Ceremonies under network faults between each end and the relay.
mod faults;

/// The repository's own checks: module docs, no history in the code, licences, cited
/// documents, module import cycles.
mod tidy;

/// The phone as a USB security key (`hybrid-bridge key`) without a kernel.
mod key;

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

/// Attestation through the bridge: every phone-sim mode reaches webauthn-rs, and with
/// `attestation: "direct"` exactly as the phone made it (the bridge does not judge it).
mod attestation {
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
}

/// Synced passkeys and device-bound credentials: the RP sees BE/BS as the phone set them,
/// at registration and at every sign-in.
mod backup_flags {
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
}

/// The `prf` extension through the bridge and the phone: `eval`, `evalByCredential` and
/// first-use evaluation on create, each result checked against the others.
mod prf {
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
}

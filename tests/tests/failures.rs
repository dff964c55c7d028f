//! Ceremonies that cannot finish (the phone denying or closing early, the relay closing, a
//! tampered advert, an expired QR session) end in an error that names what went wrong.

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

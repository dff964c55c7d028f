//! A linked phone signs in without a QR code, woken through the relay by its contact ID; a
//! relay lost while waking it is reported as the relay's error at once.

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
    let signing_in =
        bridge::webauthn::sign_in_linked("Pixel", &options, &stack.config, &mut scanner, &Silent);
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

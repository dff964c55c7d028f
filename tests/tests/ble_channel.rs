//! The CTAP 2.3 BLE data channel on the simulated medium (an L2CAP stand-in on Unix sockets
//! beside the advert file): the same sessions as through the relay, with no relay at all.

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

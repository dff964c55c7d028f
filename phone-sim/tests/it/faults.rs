//! Every fault and proximity knob, observed by a scanner reading the medium file.

use std::time::Duration;

use hybrid_protocol::eid::{self, EidPlaintext};
use hybrid_protocol::error::PeerMisbehaved;
use hybrid_protocol::keys::QrSecret;
use hybrid_protocol::tunnel::{Domain, RoutingId};
use phone_sim::{
    build_advert, AdvertFault, AdvertFile, Advertiser, MediumKnobs, Phone, PhoneConfig, PhoneError,
};
use rand_core::OsRng;

use crate::harness::*;

/// A phone with `fault` against a real relay: the desktop reads the medium and sees only
/// rejected adverts; the phone times out.
async fn faulty_session(fault: AdvertFault) -> hybrid_protocol::Error {
    let relay = relay().await;
    let f = files();
    let cfg = PhoneConfig {
        fault: Some(fault),
        timeout: Duration::from_millis(600),
        ..config(&relay.ws_url())
    };
    let phone = Phone::open(&f.store, cfg).unwrap();
    let desktop = Desktop::new(false);
    let task = spawn_qr(phone, desktop.qr.clone(), f.adverts.clone());
    let lines = wait_lines(&f.adverts, 3).await;
    let errors: Vec<_> = lines
        .iter()
        .map(|l| eid::decrypt(&desktop.eid_key(), &l.data).unwrap_err())
        .collect();
    assert!(errors.windows(2).all(|w| w[0] == w[1]));
    let (_, r) = join(task).await;
    assert!(matches!(r, Err(PhoneError::Timeout { .. })), "{r:?}");
    errors[0].clone()
}

#[tokio::test]
async fn fault_wrong_key() {
    assert_eq!(
        faulty_session(AdvertFault::WrongKey).await,
        PeerMisbehaved::AdvertNotOurs.into()
    );
}

#[tokio::test]
async fn fault_corrupt_tag() {
    assert_eq!(
        faulty_session(AdvertFault::CorruptTag).await,
        PeerMisbehaved::AdvertNotOurs.into()
    );
}

#[tokio::test]
async fn fault_reserved_bit() {
    assert_eq!(
        faulty_session(AdvertFault::ReservedBit).await,
        PeerMisbehaved::AdvertReservedBits(1).into()
    );
}

#[tokio::test]
async fn fault_unknown_domain() {
    assert_eq!(
        faulty_session(AdvertFault::UnknownDomain).await,
        PeerMisbehaved::UnknownDomain(7).into()
    );
}

#[test]
fn faults_keep_the_rest_of_the_advert() {
    let secret = QrSecret::random(&mut OsRng).unwrap();
    let key = secret.eid_key();
    let p = EidPlaintext::new(RoutingId([1, 2, 3]), Domain(300), &mut OsRng).unwrap();
    let good = build_advert(&key, &p, None, &mut OsRng).unwrap();
    assert_eq!(eid::decrypt(&key, &good).unwrap().plaintext, p);
    let corrupt = build_advert(&key, &p, Some(AdvertFault::CorruptTag), &mut OsRng).unwrap();
    assert_eq!(corrupt[..16], good[..16]);
    assert_ne!(corrupt[16..], good[16..]);
}

fn medium(path: &std::path::Path, knobs: MediumKnobs) -> AdvertFile {
    AdvertFile::new(path, knobs).unwrap()
}

#[tokio::test(start_paused = true)]
async fn interval_rssi_and_first_delay() {
    let f = files();
    let mut m = medium(
        &f.adverts,
        MediumKnobs {
            interval: Duration::from_millis(50),
            rssi: Some(-80),
            first_delay: Duration::from_millis(300),
            ..MediumKnobs::default()
        },
    );
    m.start(0xfff9, &[0xab; 20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        advert_lines(&f.adverts).is_empty(),
        "nothing before the first-advert delay"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    m.stop().await.unwrap();
    let lines = advert_lines(&f.adverts);
    assert!(
        (3..=12).contains(&lines.len()),
        "{} lines in ~400 ms at 50 ms",
        lines.len()
    );
    assert!(lines
        .iter()
        .all(|l| l.uuid16 == 0xfff9 && l.data == [0xab; 20] && l.rssi == Some(-80)));
    let text = std::fs::read_to_string(&f.adverts).unwrap();
    assert!(
        text.starts_with(&format!("fff9:{} -80\n", "ab".repeat(20))),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(advert_lines(&f.adverts).len(), lines.len(), "stop stops");
    let mut none = medium(
        &f.adverts,
        MediumKnobs {
            interval: Duration::from_millis(10),
            rssi: None,
            ..MediumKnobs::default()
        },
    );
    none.start(0xfff9, &[1; 20]).await.unwrap();
    let lines = wait_lines(&f.adverts, lines.len() + 1).await;
    none.stop().await.unwrap();
    assert_eq!(lines.last().unwrap().rssi, None);
}

/// Runs a medium for a fixed number of ticks' worth of time with `drop` and `seed` under a
/// paused clock, and returns how many lines were written.
async fn dropped(drop: f64, seed: u64) -> usize {
    let f = files();
    let mut m = medium(
        &f.adverts,
        MediumKnobs {
            interval: Duration::from_millis(10),
            drop_fraction: drop,
            seed,
            ..MediumKnobs::default()
        },
    );
    m.start(0xfff9, &[7; 20]).await.unwrap();
    // 200 ticks (the first is immediate).
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    m.stop().await.unwrap();
    advert_lines(&f.adverts).len()
}

#[tokio::test(start_paused = true)]
async fn drop_fraction_is_deterministic() {
    let all = dropped(0.0, 1).await;
    assert!((195..=201).contains(&all), "{all}");
    let half = dropped(0.5, 42).await;
    assert!(
        (60..=140).contains(&half),
        "{half} of ~200 kept at 50% drop"
    );
    assert_eq!(dropped(0.5, 42).await, half, "same seed, same drops");
    assert_eq!(dropped(1.0, 3).await, 0);
    assert!(AdvertFile::new(
        "/tmp/x",
        MediumKnobs {
            drop_fraction: 1.5,
            ..MediumKnobs::default()
        }
    )
    .is_err());
}

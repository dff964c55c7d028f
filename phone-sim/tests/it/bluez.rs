//! The BlueZ advertiser (feature `bluez`) against a mock BlueZ on a private D-Bus
//! (`test_support::bluez::AdvertiseMock`): registration with the right properties, a whole QR
//! session heard through the mock, unregistration, and a clear error without BlueZ.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hybrid_protocol::ctap::Status;
use phone_sim::{BluezAdvertiser, Operation, Phone};
use test_support::bluez::AdvertiseMock;

use crate::harness::*;

fn events(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn wait_event(log: &Path, kind: &str) -> serde_json::Value {
    for _ in 0..500 {
        if let Some(e) = events(log).into_iter().find(|e| e["event"] == kind) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {kind} event in {:?}", events(log));
}

// One test: the process-wide DBUS_SYSTEM_BUS_ADDRESS is set here and nowhere else.
#[tokio::test]
async fn bluez_advertiser_against_a_mock_bluez() {
    let f = files();
    // No BlueZ: a clear error. (In a child process: libdbus caches the bus address.)
    let out = Command::new(env!("CARGO_BIN_EXE_phone-sim"))
        .args(["--store", f.store.to_str().unwrap(), "linked", "--bluez"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bluetooth: cannot connect to BlueZ"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let mock = AdvertiseMock::start(dir.path());
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", mock.address());
    let mut adv = BluezAdvertiser::new(None).await.unwrap();
    assert_eq!(adv.adapter_name(), "hci0");

    // A whole QR session whose advert travels through BlueZ.
    let relay = relay().await;
    let url = relay.ws_url();
    let mut phone = Phone::open(&f.store, config(&url)).unwrap();
    let desktop = Desktop::new(false);
    let qr = desktop.qr.clone();
    let task = tokio::spawn(async move {
        let r = phone.serve_qr(&qr, &mut adv).await;
        (adv, r)
    });
    let mut ch = desktop.open(&url, mock.medium()).await;
    let (s, _) = ch
        .ctap(MC, &mc_request("example.com", b"u", true).to_cbor())
        .await
        .unwrap();
    assert_eq!(s, Status::Ok);
    ch.shutdown().await;
    let (_adv, r) = join(task).await;
    assert!(matches!(
        r.unwrap().operation,
        Operation::MadeCredential { .. }
    ));

    let reg = wait_event(mock.log(), "register").await;
    assert_eq!(reg["type"], "broadcast");
    let uuid = "0000fff9-0000-1000-8000-00805f9b34fb";
    assert_eq!(reg["service_uuids"], serde_json::json!([uuid]));
    let data = reg["service_data"][uuid].as_str().unwrap();
    assert_eq!(data.len(), 40, "20 bytes of service data");
    let unreg = wait_event(mock.log(), "unregister").await;
    assert_eq!(unreg["path"], reg["path"], "stopped after the handshake");
}

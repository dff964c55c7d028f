//! The BlueZ advertiser (feature `bluez`) against a mock BlueZ on a private D-Bus
//! (`tests/mock_bluez.py`): registration with the right properties, a whole QR session heard
//! through the mock, unregistration, and a clear error without BlueZ.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hybrid_protocol::ctap::Status;
use phone_sim::{BluezAdvertiser, Operation, Phone};

use crate::harness::*;

const INSTALL: &str = "apt-get install -y dbus python3-dbusmock";

struct MockBluez {
    bus: Child,
    mock: Child,
    address: String,
    log: PathBuf,
    medium: PathBuf,
}

impl Drop for MockBluez {
    fn drop(&mut self) {
        let _ = self.mock.kill();
        let _ = self.mock.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

fn start_mock(dir: &Path) -> MockBluez {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import dbus, dbus.service, gi.repository.GLib"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "the BlueZ tests need dbus-python and GLib: {INSTALL}");
    let socket = dir.join("bus");
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address"])
        .arg(format!("--address=unix:path={}", socket.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start dbus-daemon ({e}): {INSTALL}"));
    let mut line = String::new();
    BufReader::new(bus.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.trim().to_string();
    assert!(
        address.starts_with("unix:"),
        "dbus-daemon printed {address:?}"
    );
    let log = dir.join("bluez.log");
    let medium = dir.join("medium");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mock_bluez.py");
    let mut mock = Command::new("/usr/bin/python3")
        .arg(script)
        .args([&log, &medium])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(mock.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready", "mock BlueZ did not start");
    MockBluez {
        bus,
        mock,
        address,
        log,
        medium,
    }
}

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
    let mock = start_mock(dir.path());
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &mock.address);
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
    let mut ch = desktop.open(&url, &mock.medium).await;
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

    let reg = wait_event(&mock.log, "register").await;
    assert_eq!(reg["type"], "broadcast");
    let uuid = "0000fff9-0000-1000-8000-00805f9b34fb";
    assert_eq!(reg["service_uuids"], serde_json::json!([uuid]));
    let data = reg["service_data"][uuid].as_str().unwrap();
    assert_eq!(data.len(), 40, "20 bytes of service data");
    let unreg = wait_event(&mock.log, "unregister").await;
    assert_eq!(unreg["path"], reg["path"], "stopped after the handshake");
}

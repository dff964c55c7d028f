//! The btleplug scanner against a mock BlueZ (python-dbusmock's `bluez5` template through
//! `test_support::bluez::ScanMock`) on a private D-Bus, driven through `bridge scan`, plus
//! the clear error when there is no system bus.

use std::process::Command;

use hybrid_protocol::eid::{self, EidPlaintext};
use hybrid_protocol::keys::QrSecret;
use hybrid_protocol::tunnel::{Domain, RoutingId};
use test_support::bluez::{Adapter, ScanMock};

#[test]
fn no_system_bus_is_a_clear_bluetooth_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"))
        .args(["scan", "--duration", "1"])
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/system_bus",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach BlueZ on the D-Bus system bus"),
        "{err}"
    );
}

#[test]
fn btleplug_scanner_hears_and_decrypts_adverts_through_a_mock_bluez() {
    let dir = tempfile::tempdir().unwrap();
    let mut mock = ScanMock::start(dir.path(), Adapter::Powered);
    let secret = QrSecret::from_bytes([0x11; 16]);
    let pt = EidPlaintext::new(
        RoutingId([0xaa, 0xbb, 0xcc]),
        Domain(0),
        &mut rand_core::OsRng,
    )
    .unwrap();
    let ours = hex::encode(eid::encrypt(&secret.eid_key(), &pt));
    // Someone else's advert under FDE2, a too-short one, and ours.
    mock.advert("11:22:33:44:55:01", "fde2", &"ab".repeat(20), -70);
    mock.advert("11:22:33:44:55:02", "fff9", "0102", -40);
    mock.advert("11:22:33:44:55:03", "fff9", &ours, -55);
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-bridge"))
        .args([
            "scan",
            "--duration",
            "15",
            "--count",
            "30",
            "--qr-secret",
            &"11".repeat(16),
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", mock.address())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines().any(|l| l.starts_with("fff9")
            && l.contains("-55")
            && l.contains("yes: domain 0 (cable.ua5v.com), routing AABBCC")
            && l.contains("11:22:33:44:55:03")),
        "{text}"
    );
    // The tunnel is named by a prefix, never in full.
    let line = text.lines().find(|l| l.contains("yes: domain")).unwrap();
    let tunnel = line.split(", tunnel ").nth(1).unwrap();
    let hex: String = tunnel.chars().take_while(char::is_ascii_hexdigit).collect();
    assert_eq!(hex.len(), 8, "{line}");
    assert!(tunnel[8..].starts_with('…'), "{line}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("fde2") && l.contains("no:")),
        "{text}"
    );
    assert!(
        !text.contains("0102"),
        "short adverts are not candidates: {text}"
    );
}

//! The btleplug scanner against a mock BlueZ (python-dbusmock's `bluez5` template,
//! `tests/mock_bluez.py`) on a private D-Bus, driven through `bridge scan`, plus the clear
//! error when there is no system bus.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use hybrid_protocol::eid::{self, EidPlaintext};
use hybrid_protocol::keys::QrSecret;
use hybrid_protocol::tunnel::{Domain, RoutingId};

const INSTALL: &str = "apt-get install -y dbus python3-dbusmock";

struct Mock {
    bus: Child,
    mock: Child,
    address: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        drop(self.mock.stdin.take()); // EOF: the script stops the template
        let _ = self.mock.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

fn start(dir: &Path) -> Mock {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import dbus, dbusmock"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the BlueZ scanner test needs python3-dbusmock: {INSTALL}"
    );
    let socket = dir.join("system_bus");
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address"])
        .arg(format!("--address=unix:path={}", socket.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start dbus-daemon ({e}): {INSTALL}"));
    let mut address = String::new();
    BufReader::new(bus.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let address = address.trim().to_string();
    assert!(
        address.starts_with("unix:"),
        "dbus-daemon printed {address:?}"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mock_bluez.py");
    let mut mock = Command::new("/usr/bin/python3")
        .arg(script)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(mock.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(
        ready.trim(),
        "ready",
        "mock BlueZ did not start ({INSTALL})"
    );
    Mock { bus, mock, address }
}

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
    let mut mock = start(dir.path());
    let secret = QrSecret::from_bytes([0x11; 16]);
    let pt = EidPlaintext::new(
        RoutingId([0xaa, 0xbb, 0xcc]),
        Domain(0),
        &mut rand_core::OsRng,
    )
    .unwrap();
    let ours = hex::encode(eid::encrypt(&secret.eid_key(), &pt));
    let stdin = mock.mock.stdin.as_mut().unwrap();
    // Someone else's advert under FDE2, a too-short one, and ours.
    writeln!(
        stdin,
        "advert 11:22:33:44:55:01 fde2 {} -70",
        "ab".repeat(20)
    )
    .unwrap();
    writeln!(stdin, "advert 11:22:33:44:55:02 fff9 0102 -40").unwrap();
    writeln!(stdin, "advert 11:22:33:44:55:03 fff9 {ours} -55").unwrap();
    stdin.flush().unwrap();
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
        .env("DBUS_SYSTEM_BUS_ADDRESS", &mock.address)
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

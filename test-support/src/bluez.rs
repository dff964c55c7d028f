//! A mock BlueZ on a private D-Bus (test-support/python/README.md): [`Bus`] is a private
//! `dbus-daemon` whose address a test passes as `DBUS_SYSTEM_BUS_ADDRESS`; [`ScanMock`] serves
//! python-dbusmock's `bluez5` template on it with adapter hci0 ([`Adapter`]: powered, off or
//! missing) and publishes the adverts a test feeds it, for scanners; [`AdvertiseMock`] serves an
//! `org.bluez.LEAdvertisingManager1` that logs registrations and writes what is advertised to an
//! advert file, for advertisers. Each stops its processes when dropped. A missing package fails
//! the test with the command that installs it, never a silent skip.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What installs the mock's parts (Debian packages; the scripts run on `/usr/bin/python3`).
pub const INSTALL: &str = "apt-get install -y dbus python3-dbusmock";

const PYTHON: &str = "/usr/bin/python3";

/// A private D-Bus daemon, killed on drop.
pub struct Bus {
    daemon: Child,
    address: String,
}

impl Bus {
    /// Starts a bus listening on a socket in `dir`.
    pub fn start(dir: &Path) -> Self {
        let socket = dir.join("system_bus");
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon ({e}): {INSTALL}"));
        let address = first_line(&mut daemon);
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        Self { daemon, address }
    }

    /// The bus address, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// The state of the mock's adapter hci0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    /// hci0, powered: what a working machine has.
    Powered,
    /// hci0, powered off.
    Off,
    /// No adapter at all.
    Missing,
}

/// python-dbusmock's `bluez5` template on a [`Bus`] (`python/mock_bluez_scan.py`), fed adverts
/// through [`ScanMock::advert`]. Fields drop in order: the mock stops before its bus.
pub struct ScanMock {
    mock: Child,
    bus: Bus,
}

impl ScanMock {
    /// Starts a bus in `dir` and the template on it, with hci0 as `adapter` says.
    pub fn start(dir: &Path, adapter: Adapter) -> Self {
        Self::start_on(Bus::start(dir), adapter)
    }

    /// The template on an already started `bus`.
    pub fn start_on(bus: Bus, adapter: Adapter) -> Self {
        require_python(&["dbus", "dbusmock"]);
        let adapter = match adapter {
            Adapter::Powered => "on",
            Adapter::Off => "off",
            Adapter::Missing => "none",
        };
        let mut mock = Command::new(PYTHON)
            .arg(script("mock_bluez_scan.py"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .env("MOCK_BLUEZ_ADAPTER", adapter)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_ready(&mut mock);
        Self { mock, bus }
    }

    /// The bus address, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        self.bus.address()
    }

    /// A device `mac` advertising service data `hex` under the 16-bit UUID `uuid16` (e.g.
    /// "fff9") at `rssi` dBm, re-published every 100 ms like a phone's advert interval.
    pub fn advert(&mut self, mac: &str, uuid16: &str, hex: &str, rssi: i16) {
        let stdin = self.mock.stdin.as_mut().expect("the mock's stdin is open");
        writeln!(stdin, "advert {mac} {uuid16} {hex} {rssi}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for ScanMock {
    fn drop(&mut self) {
        drop(self.mock.stdin.take()); // EOF: the script stops the template
        let _ = self.mock.wait();
    }
}

/// An `org.bluez` with hci0 and its `LEAdvertisingManager1` on a private bus
/// (`python/mock_bluez_advertise.py`): each registration and unregistration is a JSON line in
/// [`AdvertiseMock::log`], and a registered advert's service data is appended to
/// [`AdvertiseMock::medium`] as advert-file lines (`uuid16:hex -50`) every 100 ms until it is
/// unregistered, so a desktop following that file hears what was advertised.
pub struct AdvertiseMock {
    mock: Child,
    bus: Bus,
    log: PathBuf,
    medium: PathBuf,
}

impl AdvertiseMock {
    /// Starts a bus in `dir` and the mock on it; the log and the advert file are in `dir`.
    pub fn start(dir: &Path) -> Self {
        require_python(&["dbus", "dbus.service", "gi.repository.GLib"]);
        let bus = Bus::start(dir);
        let log = dir.join("bluez.log");
        let medium = dir.join("medium");
        let mut mock = Command::new(PYTHON)
            .arg(script("mock_bluez_advertise.py"))
            .args([&log, &medium])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_ready(&mut mock);
        Self {
            mock,
            bus,
            log,
            medium,
        }
    }

    /// The bus address, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        self.bus.address()
    }

    /// The JSON-lines event log.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The advert file the mock writes what is advertised to.
    pub fn medium(&self) -> &Path {
        &self.medium
    }
}

impl Drop for AdvertiseMock {
    fn drop(&mut self) {
        let _ = self.mock.kill();
        let _ = self.mock.wait();
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// Fails the test, naming the install command, when `modules` cannot be imported.
fn require_python(modules: &[&str]) {
    let ok = Command::new(PYTHON)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the mock BlueZ needs python3 with {modules:?}: {INSTALL}"
    );
}

fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_string()
}

fn wait_ready(mock: &mut Child) {
    let ready = first_line(mock);
    assert_eq!(ready, "ready", "mock BlueZ did not start ({INSTALL})");
}

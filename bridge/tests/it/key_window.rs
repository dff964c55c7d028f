//! The security key's real window (`bridge/dist/hybrid-bridge-window`, GTK 4) under Xvfb,
//! driven through `WindowUi` as the key drives it, with keys pressed by xdotool: Escape
//! cancels, Tab then Enter picks the first linked phone, the arrow keys move from the
//! suggested phone, Enter alone takes the suggested QR code; the QR code,
//! a stage and an error show, and the window closes when the ceremony ends. The linked phone
//! being asked is a notification on a private session bus (python-dbusmock's
//! notification daemon). The screenshots (the choices, the QR code, an error) go to the test's
//! temporary folder, and to `docs/screenshots/key-window*.png` with `HYBRID_BRIDGE_SCREENSHOTS=1`.
//!
//! A missing package fails the test with the command that installs it, never a silent skip.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bridge::key::notify::Notifying;
use bridge::key::window::WindowUi;
use bridge::key::{Choice, KeyUi, UiRequest, UiUpdate};
use bridge::progress::Phase;
use hybrid_protocol::ctap::Command as CtapCommand;
use test_support::bluez::Bus;

const INSTALL: &str =
    "apt-get install -y xvfb xdotool imagemagick python3-gi gir1.2-gtk-4.0 dbus python3-dbusmock";
const TITLE: &str = "hybrid-bridge: security key";

/// An X server of its own, killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "640x760x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Xvfb ({e}): {INSTALL}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let number = line.trim();
        assert!(!number.is_empty(), "Xvfb printed no display number");
        Self {
            child,
            display: format!(":{number}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// python-dbusmock's notification daemon on `bus`, logging each call to `log`.
struct Notifications {
    child: Child,
}

impl Notifications {
    fn start(bus: &Bus, log: &Path) -> Self {
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "dbusmock", "--template", "notification_daemon", "-l"])
            .arg(log)
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python-dbusmock ({e}): {INSTALL}"));
        Self { child }
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/hybrid-bridge-window")
}

/// The X id of the key's window, once it is the only one visible on `display`: the window
/// of the step before can still be on the screen for a moment after its process was told to
/// close, and keys sent to it would be lost.
fn the_window(display: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", TITLE])
            .env("DISPLAY", display)
            .output()
            .unwrap_or_else(|e| panic!("cannot run xdotool ({e}): {INSTALL}"));
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        if let [id] = ids.as_slice() {
            return id.clone();
        }
        assert!(
            Instant::now() < until,
            "one visible window titled {TITLE:?} within 20 s, found {ids:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// xdotool on `display`: focuses the key's window (once it is the only one visible), then
/// presses `keys`. Focusing a window the X server has not mapped yet fails (BadMatch): that is
/// tried again, five times at most.
fn press(display: &str, keys: &[&str]) {
    let mut last = None;
    for _ in 0..5 {
        let id = the_window(display);
        let mut args = vec!["windowfocus", "--sync", id.as_str()];
        for k in keys {
            args.extend(["key", k]);
        }
        let out = Command::new("xdotool")
            .args(&args)
            .env("DISPLAY", display)
            .output()
            .unwrap_or_else(|e| panic!("cannot run xdotool ({e}): {INSTALL}"));
        if out.status.success() {
            return;
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("xdotool {keys:?}: {last:?}");
}

/// Waits for the window to say it is shown (its accessible names arrive with "ready").
async fn shown(ui: &WindowUi) {
    let until = Instant::now() + Duration::from_secs(20);
    while ui.accessible().is_empty() {
        assert!(
            Instant::now() < until,
            "the window did not show itself in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `choose` while `keys` are pressed once the window is up (after a screenshot `shot`).
async fn choose_with_keys(
    ui: &Notifying<WindowUi>,
    request: &UiRequest,
    display: &str,
    shot: Option<&str>,
    keys: &[&str],
) -> Choice {
    let keys = async {
        shown(ui.inner()).await;
        if let Some(name) = shot {
            tokio::time::sleep(Duration::from_millis(500)).await;
            screenshot(display, name);
        }
        let display = display.to_string();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            press(
                &display,
                &keys.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        })
        .await
        .unwrap();
    };
    let (choice, ()) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(ui.choose(request), keys)
    })
    .await
    .expect("the window answers within 30 s");
    choice
}

/// Whether the window closes (its process ends or it sends cancel) within `within`.
async fn closes_within(ui: &WindowUi, within: Duration) -> bool {
    tokio::time::timeout(within, ui.cancelled()).await.is_ok()
}

fn screenshot(display: &str, name: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let id = the_window(display);
    let status = Command::new("import")
        .args(["-window", &id])
        .arg(&out)
        .env("DISPLAY", display)
        .status()
        .unwrap_or_else(|e| panic!("cannot run ImageMagick's import ({e}): {INSTALL}"));
    assert!(status.success(), "import: {status}");
    if std::env::var_os("HYBRID_BRIDGE_SCREENSHOTS").is_some() {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/screenshots")
            .join(name);
        std::fs::copy(&out, committed).unwrap();
    }
    out
}

fn request(command: CtapCommand, suggested: Choice) -> UiRequest {
    UiRequest {
        command,
        rp_id: Some("webauthn.io".into()),
        phones: vec!["Pixel 8".into(), "Work iPhone".into()],
        suggested,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_under_xvfb_answers_keys_shows_stages_and_errors_and_notifies() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let x = Xvfb::start();
    let bus = Bus::start(dir.path());
    let log = dir.path().join("notifications.log");
    let _daemon = Notifications::start(&bus, &log);
    let window = WindowUi::new(program())
        .env("DISPLAY", &x.display)
        .env("GSK_RENDERER", "cairo")
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address());
    let ui = Notifying::on_bus(window, bus.address().to_string());

    // Escape cancels, and the window closes.
    let r = request(CtapCommand::GetAssertion, Choice::Qr);
    assert_eq!(
        choose_with_keys(
            &ui,
            &r,
            &x.display,
            Some("key-window-choose.png"),
            &["Escape"]
        )
        .await,
        Choice::Cancel
    );
    let names: Vec<String> = ui
        .inner()
        .accessible()
        .into_iter()
        .map(|a| a.name)
        .collect();
    for wanted in [
        "QR code to sign in to webauthn.io: scan it with your phone's camera",
        "Show a QR code to sign in to webauthn.io with a phone's camera",
        "Ask the linked phone Pixel 8 to sign in to webauthn.io",
        "Ask the linked phone Work iPhone to sign in to webauthn.io",
        "Cancel: the program is told no",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted:?} in {names:?}");
    }
    assert!(closes_within(ui.inner(), Duration::from_secs(10)).await);
    ui.inner().close();

    // Tab moves the focus from the QR code to the first phone; Enter asks it, the desktop
    // is told, and an error stays until the person closes the window (Escape).
    let r = request(CtapCommand::MakeCredential, Choice::Qr);
    assert_eq!(
        choose_with_keys(&ui, &r, &x.display, None, &["Tab", "Return"]).await,
        Choice::Phone("Pixel 8".into())
    );
    ui.show(UiUpdate::AskingPhone {
        name: "Pixel 8".into(),
    });
    ui.show(UiUpdate::Stage(Phase::ContactingPhone));
    ui.show(UiUpdate::Failed {
        message: "the phone declined: it said no on the phone; ask again and confirm there".into(),
    });
    assert!(
        !closes_within(ui.inner(), Duration::from_secs(2)).await,
        "an error stays on the screen"
    );
    let error_shot = screenshot(&x.display, "key-window-error.png");
    press(&x.display, &["Escape"]);
    assert!(closes_within(ui.inner(), Duration::from_secs(10)).await);
    ui.inner().close();
    let until = Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("Notify") || Instant::now() > until {
            break logged;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        logged.contains("Check your phone: Pixel 8")
            && logged.contains("create a passkey for webauthn.io"),
        "the notification daemon got: {logged:?}"
    );

    // The focus starts on the suggested choice (the settings' phone); the arrow keys move it.
    let r = request(
        CtapCommand::GetAssertion,
        Choice::Phone("Work iPhone".into()),
    );
    assert_eq!(
        choose_with_keys(&ui, &r, &x.display, None, &["Up", "Return"]).await,
        Choice::Phone("Pixel 8".into())
    );
    ui.inner().close();

    // Enter takes the focused suggestion (the QR code); the QR code and a stage show, and the
    // window closes by itself when the ceremony is done.
    let r = request(CtapCommand::GetAssertion, Choice::Qr);
    assert_eq!(
        choose_with_keys(&ui, &r, &x.display, None, &["Return"]).await,
        Choice::Qr
    );
    ui.show(UiUpdate::QrCode {
        url: "FIDO:/085846410335209530186736213426318044637102254659432012783734466718459420386051431838364289062453432052185404004086402561230406016".into(),
    });
    ui.show(UiUpdate::Stage(Phase::ShowingQr));
    ui.show(UiUpdate::Stage(Phase::AwaitingAdvert));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let shot = screenshot(&x.display, "key-window.png");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 2_000,
        "{} is a picture",
        shot.display()
    );
    for other in [
        error_shot,
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("key-window-choose.png"),
    ] {
        assert!(
            std::fs::metadata(&other).unwrap().len() > 2_000,
            "{}",
            other.display()
        );
    }
    ui.show(UiUpdate::Stage(Phase::AwaitingUser));
    assert!(
        !closes_within(ui.inner(), Duration::from_millis(500)).await,
        "the window stays while the ceremony runs"
    );
    ui.show(UiUpdate::Done);
    assert!(
        closes_within(ui.inner(), Duration::from_secs(10)).await,
        "the window closes when the ceremony is done"
    );
    ui.inner().close();
    eprintln!(
        "the window test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

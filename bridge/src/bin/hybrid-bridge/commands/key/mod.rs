//! `hybrid-bridge key`: the phone as a USB security key. The flags ([`KeyArgs`]) resolve to
//! the library's [`KeyConfig`], which opens `/dev/uhid` and serves every FIDO program on the
//! machine (`bridge::key`); the window (`bridge::key::window`) is what the person sees on a
//! desktop, [`terminal`] what they see with `--no-window` or without a display;
//! [`install`] sets up permissions and a login service and reports the setup (`key status`,
//! `doctor`); [`settings`] keeps the default phone and the running key's status.

pub(crate) mod install;
mod settings;
mod terminal;

use std::path::PathBuf;

use bridge::key::notify::Notifying;
use bridge::key::service::{self, AdvertSource, KeyConfig};
use bridge::key::uhid::{UhidDevice, DEVICE_NAME};
use bridge::key::window::{self, WindowUi};
use bridge::key::{KeyError, KeyUi};
use bridge::{BridgeError, LinkStore};
use clap::{Args, Subcommand};

use crate::flags::{SessionArgs, Settings};
use install::Paths;
use settings::{KeySettings, RunningKey};
use terminal::TerminalUi;

const EXAMPLES: &str = "\
Every FIDO program on this computer (Firefox and Chromium without an extension, OpenSSH,
libfido2's fido2-* tools, python-fido2, pam_u2f) sees a USB security key; each request it sends
goes to your phone: scan the QR code the key shows, or have a linked phone asked directly.

Examples:
  # Once: permissions (it prints the one command that needs root) and a login service:
  hybrid-bridge key install

  # Run the key: on a desktop, a window for each request (who asks, the QR code, your
  # linked phones, cancel) and a notification when a linked phone is asked:
  hybrid-bridge key

  # Run the key, showing QR codes in this terminal (works over ssh):
  hybrid-bridge key --no-window

  # Ask a linked phone instead of showing a QR code (`hybrid-bridge phones list`):
  hybrid-bridge key --phone 'Pixel 8'

  # Is it running, and which phone will it ask?
  hybrid-bridge key status

  # Then, for example:
  ssh-keygen -t ecdsa-sk          # a key pair whose private half lives on the phone
  fido2-token -L                  # lists the key (vendor 0x1209, product 0xf1d0)

Requests that ask for no user presence (`up: false`: browsers' silent checks, `fido2-assert`
without -p, OpenSSH keys made with -O no-touch-required) never reach the phone: the key answers
them itself, and their signatures verify nowhere. hmac-secret (PRF on USB keys) is not offered.";

/// `hybrid-bridge key`.
#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub(crate) struct KeyArgs {
    /// install, uninstall or status; without one, run the key.
    #[command(subcommand)]
    pub(crate) action: Option<KeyAction>,
    /// How the key runs.
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// `hybrid-bridge key …`
#[derive(Debug, Subcommand)]
pub(crate) enum KeyAction {
    /// Set up permissions (udev rule, uhid at boot) and a login service; says what needs root.
    Install(InstallArgs),
    /// Remove what install wrote (prints the root command for the system files).
    Uninstall,
    /// Whether the key runs, which phone it asks, and the state of its setup.
    Status,
}

/// `hybrid-bridge key install`.
#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// Ask this linked phone by default, without a QR code (stored in the key's settings).
    #[arg(long, value_name = "NAME")]
    pub(crate) phone: Option<String>,
    /// Give /dev/uhid and the key to this group instead of the person at the seat (uaccess);
    /// for machines used over ssh. Every member can then create any HID device.
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Option<String>,
    /// Only the part that needs root: the udev rule and loading uhid at boot; then reload
    /// udev and load uhid now (run with sudo).
    #[arg(long)]
    pub(crate) system: bool,
    /// Flags for the key the login service runs, e.g. -- --no-link.
    #[arg(last = true, value_name = "KEY FLAGS")]
    pub(crate) key_flags: Vec<String>,
}

/// How the key runs.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Bluetooth, the relay, the timeouts and linking: the same flags as `register`.
    #[command(flatten)]
    pub(crate) session: SessionArgs,
    /// Ask this linked phone, without a QR code [default: the settings' phone, else a QR code].
    #[arg(long, value_name = "NAME")]
    pub(crate) phone: Option<String>,
    /// Show QR codes and stages on this terminal instead of a window (ssh, servers). Without
    /// it the key opens a window for each request when a display is there (WAYLAND_DISPLAY or
    /// DISPLAY) and hybrid-bridge-window runs on it, else it uses the terminal and says why.
    #[arg(long)]
    pub(crate) no_window: bool,
    /// Also write each QR code's FIDO:/ URL to this file (tools and tests "scan" it).
    #[arg(long, value_name = "FILE", help_heading = "QR code")]
    pub(crate) qr_file: Option<PathBuf>,
    /// Don't draw QR codes on the terminal (the URL is still printed).
    #[arg(long, help_heading = "QR code")]
    pub(crate) no_qr: bool,
    /// The uhid device file.
    #[arg(long, value_name = "PATH", default_value = "/dev/uhid")]
    pub(crate) uhid: PathBuf,
}

impl KeyArgs {
    /// Runs the key, or `install`, `uninstall` or `status`.
    pub(crate) async fn run(&self, s: &Settings) -> Result<(), BridgeError> {
        run(self, s.links()?, s.color).await
    }
}

async fn run(args: &KeyArgs, links: LinkStore, color: bool) -> Result<(), BridgeError> {
    match &args.action {
        Some(KeyAction::Install(a)) => install_command(a, &links),
        Some(KeyAction::Uninstall) => {
            let paths = Paths::system()?;
            let mut done = install::uninstall(&paths, &binary()?);
            if let Some(w) = window::installed_path().filter(|w| w.exists()) {
                match std::fs::remove_file(&w) {
                    Ok(()) => done
                        .done
                        .push(format!("removed the window program {}", w.display())),
                    Err(e) => done.todo.push(format!("rm {}   # {e}", w.display())),
                }
            }
            print_installed(&done);
            Ok(())
        }
        Some(KeyAction::Status) => {
            let paths = Paths::system()?;
            print!("{}", install::status_text(&paths, &links));
            Ok(())
        }
        None => Ok(run_key(&args.run, links, color).await?),
    }
}

async fn run_key(a: &RunArgs, links: LinkStore, color: bool) -> Result<(), KeyError> {
    let settings = KeySettings::load(&KeySettings::default_path()?)?;
    let phone = a.phone.clone().or(settings.phone);
    if let Some(name) = &a.phone {
        // An unknown name fails now, not at the first request.
        links.get(name)?;
    }
    a.session
        .relay
        .config()
        .check()
        .map_err(BridgeError::from)?;
    let config = KeyConfig {
        bridge: a.session.config(Some(links.clone())),
        links,
        phone: phone.clone(),
        adverts: match &a.session.advert_file {
            Some(p) => AdvertSource::File(p.clone()),
            None => AdvertSource::Bluetooth(a.session.adapter.clone()),
        },
        qr_file: a.qr_file.clone(),
    };
    let running_path = RunningKey::default_path()?;
    if let Some(k) = RunningKey::read(&running_path) {
        return Err(KeyError::AlreadyRunning(k.pid));
    }
    let ui = pick_ui(a, color).await;
    let mut device =
        UhidDevice::create(&a.uhid, DEVICE_NAME, &format!("pid{}", std::process::id()))?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let _record = RunningKey {
        pid: std::process::id(),
        started,
        phone: phone.clone(),
        uhid: a.uhid.clone(),
    }
    .record(&running_path)?;
    eprintln!(
        "hybrid-bridge key: ready ({}); {}. Ctrl-C stops it.",
        a.uhid.display(),
        match &phone {
            Some(p) => format!(
                "requests go to the linked phone {:?}",
                bridge::sanitize::for_terminal(p)
            ),
            None => "each request shows a QR code".into(),
        }
    );
    service::serve(&mut device, &config, &ui, shutdown_signal()).await
}

/// The window when a display is there and the window program runs on it, else the terminal;
/// says which and why. Either way a linked phone being asked is a desktop notification too.
async fn pick_ui(a: &RunArgs, color: bool) -> Notifying<Box<dyn KeyUi>> {
    let terminal = |why: &str| -> Box<dyn KeyUi> {
        eprintln!("hybrid-bridge key: {why}; showing QR codes and stages on this terminal");
        Box::new(TerminalUi::new(color, !a.no_qr))
    };
    let ui = if a.no_window {
        terminal("--no-window")
    } else if !window::display_available() {
        terminal("no display (neither WAYLAND_DISPLAY nor DISPLAY is set)")
    } else {
        match window::locate() {
            None => terminal(&format!(
                "the window program {} is not installed (beside hybrid-bridge or on PATH; it is bridge/dist/{} in the source)",
                window::PROGRAM_NAME,
                window::PROGRAM_NAME
            )),
            Some(program) => match window::check(&program).await {
                Ok(()) => {
                    eprintln!(
                        "hybrid-bridge key: each request opens a window ({})",
                        program.display()
                    );
                    Box::new(WindowUi::new(program))
                }
                Err(e) => terminal(&format!("the window cannot open: {e}")),
            },
        }
    };
    Notifying::new(ui)
}

/// Ctrl-C or SIGTERM (systemd stopping the service).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn install_command(a: &InstallArgs, links: &LinkStore) -> Result<(), BridgeError> {
    let paths = Paths::system()?;
    if a.system {
        let done = install::install_system(&paths, a.group.as_deref())?;
        for d in &done {
            println!("✓ {d}");
        }
        for (what, cmd) in [
            ("udev reloaded", vec!["udevadm", "control", "--reload"]),
            ("uhid loaded", vec!["modprobe", "uhid"]),
            (
                "rule applied to /dev/uhid",
                vec!["udevadm", "trigger", "/sys/class/misc/uhid"],
            ),
        ] {
            match std::process::Command::new(cmd[0]).args(&cmd[1..]).status() {
                Ok(s) if s.success() => println!("✓ {what}"),
                Ok(s) => println!("✗ {} exited with {s}; run it again by hand", cmd.join(" ")),
                Err(e) => println!("✗ {}: {e}; run it by hand", cmd.join(" ")),
            }
        }
        return Ok(());
    }
    if let Some(name) = &a.phone {
        links.get(name)?;
    }
    let mut done = install::install(
        &paths,
        &binary()?,
        &a.key_flags,
        a.phone.as_deref(),
        a.group.as_deref(),
    )?;
    // The window each request opens on a desktop (GTK 4 through python3-gi).
    if let Some(w) = window::installed_path() {
        match window::install(&w) {
            Ok(()) => done.done.push(format!("window: {}", w.display())),
            Err(e) => done.todo.push(format!(
                "the window program could not be written to {} ({e}); the key uses the terminal",
                w.display()
            )),
        }
    }
    print_installed(&done);
    Ok(())
}

fn print_installed(done: &install::Installed) {
    for d in &done.done {
        println!("✓ {d}");
    }
    if !done.todo.is_empty() {
        println!("\nstill to do:");
        for t in &done.todo {
            println!("  {t}");
        }
    }
}

fn binary() -> Result<PathBuf, BridgeError> {
    std::env::current_exe()
        .map_err(|e| BridgeError::Internal(format!("cannot tell where this program is: {e}")))
}

//! The command line, in two stages (docs/STYLE.md#cli): clap's raw flags ([`Cli`]), then resolved
//! options that open scanners and call the library. `main.rs` only sets up logging, parses and
//! maps the result to an exit code.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hybrid_protocol::eid;
use hybrid_protocol::keys::{EidKey, QrSecret};
use hybrid_protocol::qr::QrCode;

use crate::ble::BtleplugScanner;
use crate::ceremony::BridgeConfig;
use crate::error::BridgeError;
use crate::links::LinkStore;
use crate::progress::{Event, Phase, Progress, ProgressStyle, StderrProgress};
use crate::render;
use crate::scanner::{AdvertFileScanner, Scanner};
pub use crate::session_args::SessionArgs;
use crate::units::human_time;
pub use crate::units::parse_duration;
use crate::webauthn::{self, b64url, AuthenticationOptions, RegistrationOptions, UserVerification};

const EXAMPLES: &str = "\
Examples:
  # Register a passkey for example.com on your phone (scan the QR code it shows):
  hybrid-bridge register --rp-id example.com --user-name alice

  # Sign in with it; the result is W3C AuthenticationResponseJSON on stdout:
  hybrid-bridge sign-in --rp-id example.com --out assertion.json

  # Use a relying party's own options JSON (from navigator.credentials.create's input):
  hybrid-bridge register --options creation-options.json --origin https://example.com

  # Sign in again without a QR code, with a phone linked during an earlier ceremony:
  hybrid-bridge phones list
  hybrid-bridge sign-in --rp-id example.com --phone 'Pixel 8'

  # Against a self-hosted relay and phone-sim's simulated Bluetooth medium:
  hybrid-bridge sign-in --rp-id example.com --tunnel-override ws://127.0.0.1:8080 \\
      --advert-file /tmp/adverts --qr-file /tmp/qr.txt

  # See which hybrid adverts are around, and whether they belong to a QR code:
  hybrid-bridge scan --qr 'FIDO:/1234…'

  # Shell completions and the manual page:
  hybrid-bridge completions bash > ~/.local/share/bash-completion/completions/hybrid-bridge
  hybrid-bridge man > hybrid-bridge.1

Durations take a unit (120s, 2m, 1m30s); a bare number is seconds.

Exit codes: 0 ok, 1 local failure, 2 bad usage, 3 a stage timed out, 4 Bluetooth,
5 tunnel relay, 6 phone protocol error, 7 refused on the phone, 8 linked phone gone.";

/// Sign in on this computer with a phone: FIDO cross-device authentication (hybrid / caBLE v2).
#[derive(Debug, Parser)]
#[command(name = "hybrid-bridge", version, after_long_help = EXAMPLES)]
pub struct Cli {
    /// Print no progress (the QR code and errors still show).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Progress format on stderr: text for people, json for programs (one object per line,
    /// ending with a `result` or an `error` event).
    #[arg(long, global = true, value_enum, default_value_t = EventsFormat::Text)]
    pub events: EventsFormat,
    /// Colour (the terminal QR code, logs): auto uses it on a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The linked-phones file [default: $XDG_DATA_HOME/hybrid-bridge/links.json].
    #[arg(long, global = true, env = "BRIDGE_LINKS_FILE")]
    pub links_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Progress formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    /// Lines for a person.
    Text,
    /// JSON lines.
    Json,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM is dumb.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to write ANSI colour codes to a stream that is (`is_terminal`) a terminal.
    pub fn enabled(self, is_terminal: bool) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => {
                is_terminal
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
            }
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a passkey on a phone (WebAuthn registration); prints RegistrationResponseJSON.
    Register(RegisterArgs),
    /// Sign in with a passkey on a phone; prints AuthenticationResponseJSON.
    SignIn(SignInArgs),
    /// List or forget linked phones.
    Phones {
        /// list or forget.
        #[command(subcommand)]
        action: PhonesAction,
    },
    /// List the hybrid adverts heard, live; with --qr or --qr-secret, say which decrypt.
    Scan(ScanArgs),
    /// The browser extension's native messaging host (the browser starts it; see `browser`).
    NativeHost(crate::native_host::HostArgs),
    /// Install or remove the native messaging host for Chromium, Chrome and Firefox.
    Browser(crate::native_host::install::BrowserArgs),
    /// Check Bluetooth, the browser host, relays, the clock and linked phones; say what to fix.
    Doctor(crate::doctor::DoctorArgs),
    /// Print a shell completion script, e.g. `hybrid-bridge completions bash`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `hybrid-bridge man | man -l -`.
    Man,
}

/// `hybrid-bridge phones …`
#[derive(Debug, Subcommand)]
pub enum PhonesAction {
    /// Show the linked phones.
    List,
    /// Delete a linked phone.
    Forget {
        /// Its name, as `hybrid-bridge phones list` shows it.
        name: String,
    },
}

/// The relying party and request.
#[derive(Debug, Args)]
pub struct RpArgs {
    /// W3C options JSON file (PublicKeyCredentialCreationOptionsJSON or …RequestOptionsJSON),
    /// or - for stdin. Flags below are then ignored except --origin.
    #[arg(long, value_name = "FILE", help_heading = "Relying party")]
    pub options: Option<String>,
    /// Relying party ID, e.g. example.com.
    #[arg(long, value_name = "DOMAIN", help_heading = "Relying party")]
    pub rp_id: Option<String>,
    /// Web origin (default: https://RP-ID). The RP ID must be its host or a parent domain.
    #[arg(long, value_name = "URL", help_heading = "Relying party")]
    pub origin: Option<String>,
    /// Challenge, base64url [default: 32 random bytes].
    #[arg(long, value_name = "BASE64URL", help_heading = "Relying party")]
    pub challenge: Option<String>,
    /// User verification.
    #[arg(long, value_enum, default_value_t = UvArg::Preferred, help_heading = "Relying party")]
    pub uv: UvArg,
    /// Write the JSON result here instead of stdout (checked before the QR code shows; if
    /// writing still fails, the result goes to stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `--uv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UvArg {
    /// Required.
    Required,
    /// Preferred.
    Preferred,
    /// Discouraged.
    Discouraged,
}

impl From<UvArg> for UserVerification {
    fn from(u: UvArg) -> Self {
        match u {
            UvArg::Required => Self::Required,
            UvArg::Preferred => Self::Preferred,
            UvArg::Discouraged => Self::Discouraged,
        }
    }
}

/// `--resident-key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ResidentKeyArg {
    /// A discoverable credential (a passkey): sign in without naming it.
    Required,
    /// Discoverable if the phone can.
    Preferred,
    /// A server-side credential: signing in needs its ID (--allow).
    Discouraged,
}

/// `hybrid-bridge register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    rp: RpArgs,
    /// Relying party display name [default: the RP ID].
    #[arg(long, value_name = "NAME", help_heading = "Relying party")]
    rp_name: Option<String>,
    /// User name (account), e.g. alice@example.com.
    #[arg(long, value_name = "NAME", help_heading = "Relying party")]
    user_name: Option<String>,
    /// User display name [default: the user name].
    #[arg(long, value_name = "NAME", help_heading = "Relying party")]
    display_name: Option<String>,
    /// User handle, base64url [default: 16 random bytes].
    #[arg(long, value_name = "BASE64URL", help_heading = "Relying party")]
    user_id: Option<String>,
    /// What kind of credential to ask for: required makes a passkey that `sign-in --rp-id`
    /// finds without naming it.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = ResidentKeyArg::Required, help_heading = "Relying party")]
    resident_key: ResidentKeyArg,
    /// Request the credProps extension.
    #[arg(long, help_heading = "Relying party")]
    cred_props: bool,
    /// Request the prf extension.
    #[arg(long, help_heading = "Relying party")]
    prf: bool,
    /// Credential IDs (base64url) the phone must not already hold.
    #[arg(long, value_name = "BASE64URL", help_heading = "Relying party")]
    exclude: Vec<String>,
    #[command(flatten)]
    conn: ConnectArgs,
}

/// `hybrid-bridge sign-in`.
#[derive(Debug, Args)]
pub struct SignInArgs {
    #[command(flatten)]
    rp: RpArgs,
    /// Allowed credential IDs, base64url [default: any passkey for the RP].
    #[arg(long, value_name = "BASE64URL", help_heading = "Relying party")]
    allow: Vec<String>,
    /// PRF input (base64url) to evaluate.
    #[arg(long, value_name = "BASE64URL", help_heading = "Relying party")]
    prf_first: Option<String>,
    /// Sign in with this linked phone, without a QR code (`hybrid-bridge phones list`).
    #[arg(long, value_name = "NAME")]
    phone: Option<String>,
    #[command(flatten)]
    conn: ConnectArgs,
}

/// How to hear and reach the phone ([`SessionArgs`], which it derefs to), and where the QR
/// code goes.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// Write the FIDO:/ URL to this file (tools and tests "scan" it from there).
    #[arg(long, value_name = "FILE", help_heading = "QR code")]
    pub qr_file: Option<PathBuf>,
    /// Write the QR code as PNG.
    #[arg(long, value_name = "FILE", help_heading = "QR code")]
    pub qr_png: Option<PathBuf>,
    /// Write the QR code as SVG.
    #[arg(long, value_name = "FILE", help_heading = "QR code")]
    pub qr_svg: Option<PathBuf>,
    /// Don't draw the QR code in the terminal.
    #[arg(long, help_heading = "QR code")]
    pub no_qr: bool,
}

impl std::ops::Deref for ConnectArgs {
    type Target = SessionArgs;
    fn deref(&self) -> &SessionArgs {
        &self.session
    }
}

/// `hybrid-bridge scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// A FIDO:/ URL whose adverts to recognise.
    #[arg(long)]
    pub qr: Option<String>,
    /// A QR secret (32 hex digits) whose adverts to recognise.
    #[arg(long)]
    pub qr_secret: Option<String>,
    /// Listen on the simulated medium instead of Bluetooth.
    #[arg(long, env = "BRIDGE_ADVERT_FILE")]
    pub advert_file: Option<PathBuf>,
    /// Read the advert file from its first line rather than from its end.
    #[arg(long)]
    pub from_start: bool,
    /// Bluetooth adapter.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Stop after this long, e.g. 30s or 2m [default: run until interrupted].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many adverts.
    #[arg(long)]
    pub count: Option<usize>,
    #[command(flatten)]
    pub report: crate::report::ReportArgs,
}

/// Checks that `path` can be written (its folder exists and takes a new file), before a
/// ceremony starts: a phone's passkey must not be created only for its result to be lost.
fn check_writable(flag: &str, path: &Path) -> Result<(), BridgeError> {
    if path.is_dir() {
        return Err(BridgeError::Usage(format!(
            "{flag} {} is a folder; give a file name",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(BridgeError::Usage(format!(
            "{flag} {}: the folder {} does not exist; create it first",
            path.display(),
            dir.display()
        )));
    }
    let probe = dir.join(format!(".hybrid-bridge-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(BridgeError::Usage(format!(
            "{flag} {}: cannot write in {} ({e})",
            path.display(),
            dir.display()
        ))),
    }
}

impl ConnectArgs {
    /// Everything that can be checked before the QR code shows: output files, the advert
    /// file's folder, the relay settings.
    fn check(&self, out: Option<&PathBuf>) -> Result<(), BridgeError> {
        for (flag, path) in [
            ("--out", out),
            ("--qr-file", self.qr_file.as_ref()),
            ("--qr-png", self.qr_png.as_ref()),
            ("--qr-svg", self.qr_svg.as_ref()),
        ] {
            if let Some(p) = path {
                check_writable(flag, p)?;
            }
        }
        if let Some(p) = &self.advert_file {
            match p.parent() {
                Some(d) if !d.as_os_str().is_empty() && !d.is_dir() => {
                    return Err(BridgeError::Usage(format!(
                        "--advert-file {}: the folder {} does not exist",
                        p.display(),
                        d.display()
                    )))
                }
                _ => {}
            }
        }
        self.relay.config().check()?;
        Ok(())
    }
}

async fn open_scanner(
    advert_file: Option<&PathBuf>,
    adapter: Option<&str>,
    from_start: bool,
) -> Result<Box<dyn Scanner>, BridgeError> {
    Ok(match advert_file {
        Some(p) if from_start => Box::new(AdvertFileScanner::from_start(p)),
        Some(p) => Box::new(AdvertFileScanner::new(p)?),
        None => Box::new(BtleplugScanner::start(adapter).await?),
    })
}

/// Shows the QR code (terminal, files) when the ceremony reports it, remembers the phase for
/// an error report, then forwards events.
struct CliProgress<'a> {
    inner: StderrProgress,
    style: ProgressStyle,
    color: bool,
    conn: &'a ConnectArgs,
    /// The RP ID, for the "next time" hint after linking.
    rp_id: &'a str,
    phase: &'a PhaseTracker,
}

/// The last phase a ceremony entered (for `--events json` error events).
#[derive(Debug, Default)]
pub struct PhaseTracker(std::sync::Mutex<Option<Phase>>);

impl PhaseTracker {
    fn set(&self, phase: Phase) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(phase);
    }

    fn get(&self) -> Option<Phase> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for CliProgress<'_> {
    fn on_event(&self, event: &Event, elapsed: Duration) {
        match event {
            Event::QrCode { url } => {
                if let Err(e) = self.show_qr(url) {
                    self.warn(&e.to_string());
                }
            }
            Event::Phase { phase } => self.phase.set(*phase),
            _ => {}
        }
        self.inner.on_event(event, elapsed);
        if let (Event::Linked { name }, ProgressStyle::Text) = (event, self.style) {
            eprintln!("next time, no QR code: {}", self.next_time(name));
        }
    }
}

impl CliProgress<'_> {
    fn warn(&self, message: &str) {
        match self.style {
            ProgressStyle::Json => {
                eprintln!(
                    "{}",
                    serde_json::json!({"event": "warning", "message": message})
                )
            }
            _ => eprintln!("warning: {message}"),
        }
    }

    /// The command that signs in with the phone just linked, with the flags this run used
    /// to reach it.
    fn next_time(&self, name: &str) -> String {
        let quote = |s: &str| {
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c))
            {
                s.to_string()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        };
        let mut cmd = format!(
            "hybrid-bridge sign-in --rp-id {} --phone {}",
            quote(self.rp_id),
            quote(name)
        );
        let c = self.conn;
        if let Some(t) = &c.relay.tunnel_override {
            cmd += &format!(" --tunnel-override {}", quote(t));
        }
        if let Some(f) = &c.advert_file {
            cmd += &format!(" --advert-file {}", quote(&f.display().to_string()));
        }
        if let Some(f) = &c.relay.extra_ca {
            cmd += &format!(" --extra-ca {}", quote(&f.display().to_string()));
        }
        cmd
    }

    fn show_qr(&self, url: &str) -> Result<(), BridgeError> {
        let c = self.conn;
        if let Some(p) = &c.qr_file {
            // Whole or not at all, and 0600: the URL holds the QR secret.
            fsutil::write_atomic(p, format!("{url}\n").as_bytes())
                .map_err(|e| BridgeError::file("writing the QR URL", p, e))?;
        }
        if let Some(p) = &c.qr_png {
            render::write_png(url, p, 8)?;
        }
        if let Some(p) = &c.qr_svg {
            render::write_svg(url, p)?;
        }
        // -q hides progress, not the QR code; JSON mode has the URL in its qr_code event.
        if self.style != ProgressStyle::Json && !c.no_qr {
            let drawn = if self.color {
                render::terminal(url)?
            } else {
                render::terminal_plain(url)?
            };
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{drawn}");
            let _ = writeln!(err, "{url}");
        }
        Ok(())
    }
}

fn read_options(src: &str) -> Result<String, BridgeError> {
    if src == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| BridgeError::file("reading options from", Path::new("stdin"), e))?;
        Ok(s)
    } else {
        std::fs::read_to_string(src)
            .map_err(|e| BridgeError::file("reading the options file", Path::new(src), e))
    }
}

fn random_b64(n: usize) -> String {
    use rand::RngCore as _;
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b64url(&b)
}

fn b64_arg(flag: &str, s: &str) -> Result<Vec<u8>, BridgeError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| BridgeError::Usage(format!("{flag} must be base64url, got {s:?}")))
}

/// Writes the result to `out` (or stdout). If `out` cannot be written after all, the result
/// goes to stdout before the error is returned: the phone already did its part.
fn emit_json(
    out: Option<&PathBuf>,
    value: &impl serde::Serialize,
    style: ProgressStyle,
    kind: &str,
    id: &str,
) -> Result<(), BridgeError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| BridgeError::Internal(e.to_string()))?;
    let written = match out {
        Some(p) => match std::fs::write(p, format!("{text}\n")) {
            Ok(()) => Ok(Some(p.display().to_string())),
            Err(e) => {
                println!("{text}");
                Err(BridgeError::file(
                    "writing the result (printed to stdout instead)",
                    p,
                    e,
                ))
            }
        },
        None => {
            println!("{text}");
            Ok(None)
        }
    };
    if style == ProgressStyle::Json {
        let (out, ok) = match &written {
            Ok(path) => (path.clone(), true),
            Err(_) => (None, false),
        };
        eprintln!(
            "{}",
            serde_json::json!({"event": "result", "kind": kind, "id": id, "out": out, "stdout": !ok || out.is_none()})
        );
    }
    written.map(|_| ())
}

impl Cli {
    fn style(&self) -> ProgressStyle {
        if self.quiet {
            ProgressStyle::Quiet
        } else if self.events == EventsFormat::Json {
            ProgressStyle::Json
        } else {
            ProgressStyle::Text
        }
    }

    fn color(&self) -> bool {
        use std::io::IsTerminal as _;
        self.color.enabled(std::io::stderr().is_terminal())
    }

    fn links(&self) -> Result<LinkStore, BridgeError> {
        Ok(LinkStore::new(match &self.links_file {
            Some(p) => p.clone(),
            None => LinkStore::default_path()?,
        }))
    }
}

impl RegisterArgs {
    /// The registration options: the `--options` JSON, or built from the flags the way a
    /// relying party would (a discoverable credential unless `--resident-key` says otherwise).
    pub fn options(&self) -> Result<RegistrationOptions, BridgeError> {
        let a = self;
        Ok(match &a.rp.options {
            Some(src) => {
                RegistrationOptions::from_json(&read_options(src)?, a.rp.origin.as_deref())?
            }
            None => {
                let rp_id = a.rp.rp_id.clone().ok_or_else(|| {
                    BridgeError::Usage("register needs --rp-id (or --options FILE)".into())
                })?;
                let user_name = a.user_name.clone().ok_or_else(|| {
                    BridgeError::Usage("register needs --user-name (or --options FILE)".into())
                })?;
                let json = serde_json::json!({
                    "rp": {"id": rp_id, "name": a.rp_name.clone().unwrap_or_else(|| rp_id.clone())},
                    "user": {
                        "id": a.user_id.clone().unwrap_or_else(|| random_b64(16)),
                        "name": user_name,
                        "displayName": a.display_name.clone().unwrap_or_else(|| user_name.clone()),
                    },
                    "challenge": a.rp.challenge.clone().unwrap_or_else(|| random_b64(32)),
                    "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                    "excludeCredentials": a.exclude.iter().map(|id| serde_json::json!({"type": "public-key", "id": id})).collect::<Vec<_>>(),
                    "authenticatorSelection": {
                        "residentKey": match a.resident_key {
                            ResidentKeyArg::Required => "required",
                            ResidentKeyArg::Preferred => "preferred",
                            ResidentKeyArg::Discouraged => "discouraged",
                        },
                        "userVerification": UserVerification::from(a.rp.uv),
                    },
                    "extensions": if a.prf {
                        serde_json::json!({"credProps": a.cred_props, "prf": {}})
                    } else {
                        serde_json::json!({"credProps": a.cred_props})
                    },
                });
                RegistrationOptions::from_json(&json.to_string(), a.rp.origin.as_deref())?
            }
        })
    }
}

/// Runs the parsed command line and reports a failure (a line for a person, or an `error`
/// event with `--events json`); returns the process exit code.
/// Runs `task` to completion on the two-worker runtime every binary of the project uses; if
/// the runtime cannot start, says so and exits 1 (there is nothing else a binary could do).
pub fn block_on<T>(task: impl std::future::Future<Output = T>) -> T {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(task),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}

pub async fn main(cli: Cli) -> i32 {
    let phase = PhaseTracker::default();
    match run(&cli, &phase).await {
        Ok(()) => 0,
        Err(e) => {
            let code = e.exit_code();
            let message = crate::sanitize::for_terminal(&e.to_string());
            if cli.events == EventsFormat::Json {
                let phase = match &e {
                    BridgeError::Timeout { phase, .. } => Some(*phase),
                    _ => phase.get(),
                };
                eprintln!(
                    "{}",
                    serde_json::json!({"event": "error", "message": message, "exit_code": code, "phase": phase})
                );
            } else {
                eprintln!("error: {message}");
            }
            code
        }
    }
}

/// What `register` and `sign-in` set up once their options are known: the ceremony settings,
/// everything checked that can be before the QR code shows (`out` among it), the scanner, and
/// the progress display.
async fn prepare<'a>(
    cli: &Cli,
    conn: &'a ConnectArgs,
    out: Option<&PathBuf>,
    rp_id: &'a str,
    phase: &'a PhaseTracker,
) -> Result<(BridgeConfig, Box<dyn Scanner>, CliProgress<'a>), BridgeError> {
    let config = conn.config(Some(cli.links()?));
    conn.check(out)?;
    let scanner = open_scanner(conn.advert_file.as_ref(), conn.adapter.as_deref(), false).await?;
    let style = cli.style();
    let progress = CliProgress {
        inner: StderrProgress::new(style),
        style,
        color: cli.color(),
        conn,
        rp_id,
        phase,
    };
    Ok((config, scanner, progress))
}

/// Runs the parsed command line.
pub async fn run(cli: &Cli, phase: &PhaseTracker) -> Result<(), BridgeError> {
    let style = cli.style();
    match &cli.command {
        Command::Register(a) => {
            let options = a.options()?;
            options.validate()?;
            let (config, mut scanner, progress) =
                prepare(cli, &a.conn, a.rp.out.as_ref(), &options.rp_id, phase).await?;
            let r = webauthn::register(&options, &config, scanner.as_mut(), &progress).await?;
            emit_json(
                a.rp.out.as_ref(),
                &r.json,
                style,
                "registration",
                &r.json.id,
            )
        }
        Command::SignIn(a) => {
            let options = match &a.rp.options {
                Some(src) => {
                    AuthenticationOptions::from_json(&read_options(src)?, a.rp.origin.as_deref())?
                }
                None => {
                    let mut json = serde_json::json!({
                        "challenge": a.rp.challenge.clone().unwrap_or_else(|| random_b64(32)),
                        "allowCredentials": a.allow.iter().map(|id| serde_json::json!({"type": "public-key", "id": id})).collect::<Vec<_>>(),
                        "userVerification": UserVerification::from(a.rp.uv),
                    });
                    if let Some(rp) = &a.rp.rp_id {
                        json["rpId"] = rp.clone().into();
                    }
                    if let Some(f) = &a.prf_first {
                        b64_arg("--prf-first", f)?;
                        json["extensions"] = serde_json::json!({"prf": {"eval": {"first": f}}});
                    }
                    AuthenticationOptions::from_json(&json.to_string(), a.rp.origin.as_deref())?
                }
            };
            if let Some(phone) = &a.phone {
                // Fail on an unknown name before touching Bluetooth.
                cli.links()?.get(phone)?;
            }
            let (config, mut scanner, progress) =
                prepare(cli, &a.conn, a.rp.out.as_ref(), &options.rp_id, phase).await?;
            let r = match &a.phone {
                Some(phone) => {
                    let config = BridgeConfig {
                        links: Some(cli.links()?),
                        ..config
                    };
                    webauthn::sign_in_linked(phone, &options, &config, scanner.as_mut(), &progress)
                        .await?
                }
                None => webauthn::sign_in(&options, &config, scanner.as_mut(), &progress).await?,
            };
            emit_json(
                a.rp.out.as_ref(),
                &r.json,
                style,
                "authentication",
                &r.json.id,
            )
        }
        Command::Phones { action } => {
            let store = cli.links()?;
            match action {
                PhonesAction::List => {
                    let links = store.list()?;
                    if links.is_empty() && !cli.quiet {
                        eprintln!("no linked phones in {}", store.path().display());
                    }
                    for l in links {
                        println!(
                            "{}\t{}\tlinked {}",
                            crate::sanitize::for_terminal(&l.name),
                            crate::sanitize::for_terminal(&l.tunnel_domain),
                            human_time(l.linked_at)
                        );
                    }
                    Ok(())
                }
                PhonesAction::Forget { name } => {
                    store.forget(name)?;
                    if !cli.quiet {
                        eprintln!("forgot {name:?}");
                    }
                    Ok(())
                }
            }
        }
        Command::Scan(a) => scan(a).await,
        Command::NativeHost(a) => crate::native_host::run(a, cli.links_file.clone()).await,
        Command::Browser(a) => crate::native_host::install::run(a),
        Command::Doctor(a) => crate::doctor::run(a, cli.links_file.clone()).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "hybrid-bridge", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| BridgeError::file("writing the manual page", Path::new("stdout"), e))
        }
    }
}

async fn scan(a: &ScanArgs) -> Result<(), BridgeError> {
    let key: Option<(EidKey, QrSecret)> = match (&a.qr, &a.qr_secret) {
        (Some(_), Some(_)) => {
            return Err(BridgeError::Usage(
                "give --qr or --qr-secret, not both".into(),
            ))
        }
        (Some(url), None) => {
            let qr = QrCode::parse(url.trim())
                .map_err(|e| BridgeError::Usage(format!("--qr is not a FIDO:/ URL: {e}")))?;
            Some((qr.secret.eid_key(), qr.secret))
        }
        (None, Some(h)) => {
            let s = hex::decode(h.trim())
                .ok()
                .and_then(|b| QrSecret::from_slice(&b).ok())
                .ok_or_else(|| BridgeError::Usage("--qr-secret must be 32 hex digits".into()))?;
            Some((s.eid_key(), s))
        }
        (None, None) => None,
    };
    let mut recorder = crate::report::Recorder::new(&a.report, key.as_ref().map(|(k, _)| k))?;
    let mut scanner =
        open_scanner(a.advert_file.as_ref(), a.adapter.as_deref(), a.from_start).await?;
    let deadline = a.duration.map(|d| tokio::time::Instant::now() + d);
    let mut seen = 0usize;
    println!("UUID  RSSI   LEN  SUFFIX    ADDRESS            MATCH");
    loop {
        if a.count.is_some_and(|c| seen >= c) {
            break;
        }
        let next = scanner.next_advert();
        let heard = match deadline {
            Some(d) => match tokio::time::timeout_at(d, next).await {
                Ok(h) => h?,
                Err(_) => break,
            },
            None => tokio::select! {
                h = next => h?,
                _ = tokio::signal::ctrl_c() => break,
            },
        };
        seen += 1;
        recorder.record(&heard);
        let suffix = if heard.data.len() > eid::ADVERT_LEN {
            format!("{}B", heard.data.len() - eid::ADVERT_LEN)
        } else {
            "-".into()
        };
        let verdict = match &key {
            None => String::new(),
            Some((k, secret)) => match eid::decrypt(k, &heard.data) {
                Ok(m) => format!(
                    "yes: domain {} ({}), routing {}, tunnel {}…{}",
                    m.plaintext.domain.0,
                    m.plaintext
                        .domain
                        .name()
                        .unwrap_or_else(|_| "unknown".into()),
                    m.plaintext.routing_id.to_hex(),
                    // A prefix names the tunnel; the whole ID is the relay address of a
                    // live session and stays off screens and logs (as everywhere else).
                    &secret.tunnel_id().to_hex()[..8],
                    m.suffix
                        .and_then(|s| s.l2cap_psm)
                        .map(|p| format!(", L2CAP PSM {p}"))
                        .unwrap_or_default()
                ),
                Err(e) => format!("no: {e}"),
            },
        };
        println!(
            "{:04x}  {:>4}  {:>4}  {:<8}  {:<17}  {}",
            heard.uuid16,
            heard
                .rssi
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            heard.data.len(),
            suffix,
            heard.address.as_deref().unwrap_or("-"),
            verdict
        );
    }
    recorder.finish()
}

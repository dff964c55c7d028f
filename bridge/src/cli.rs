//! The command line, in two stages (STYLE §5): clap's raw flags ([`Cli`]), then resolved
//! options that open scanners and call the library. `main.rs` only sets up logging, parses and
//! maps the result to an exit code.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hybrid_protocol::eid;
use hybrid_protocol::keys::{EidKey, QrSecret};
use hybrid_protocol::qr::QrCode;

use crate::ble::BtleplugScanner;
use crate::ceremony::{BridgeConfig, Timeouts};
use crate::error::BridgeError;
use crate::links::LinkStore;
use crate::progress::{Event, Progress, ProgressStyle, StderrProgress};
use crate::render;
use crate::scanner::{AdvertFileScanner, Scanner};
use crate::webauthn::{self, b64url, AuthenticationOptions, RegistrationOptions, UserVerification};
use tunnel_client::{parse_connect_to, TunnelConfig};

const EXAMPLES: &str = "\
Examples:
  # Register a passkey for example.com on your phone (scan the QR code it shows):
  bridge register --rp-id example.com --user-name alice

  # Sign in with it; the result is W3C AuthenticationResponseJSON on stdout:
  bridge sign-in --rp-id example.com --out assertion.json

  # Use a relying party's own options JSON (from navigator.credentials.create's input):
  bridge register --options creation-options.json --origin https://example.com

  # Sign in again without a QR code, with a phone linked during an earlier ceremony:
  bridge phones list
  bridge sign-in --rp-id example.com --phone 'Pixel 8'

  # Against a self-hosted relay and phone-sim's simulated Bluetooth medium:
  bridge sign-in --rp-id example.com --tunnel-override ws://127.0.0.1:8080 \\
      --advert-file /tmp/adverts --qr-file /tmp/qr.txt

  # See which hybrid adverts are around, and whether they belong to a QR code:
  bridge scan --qr 'FIDO:/1234…'

Exit codes: 0 ok, 1 local failure, 2 bad usage, 3 a stage timed out, 4 Bluetooth,
5 tunnel relay, 6 phone protocol error, 7 refused on the phone, 8 linked phone gone.";

/// Sign in on this computer with a phone: FIDO cross-device authentication (hybrid / caBLE v2).
#[derive(Debug, Parser)]
#[command(name = "hybrid-bridge", version, after_long_help = EXAMPLES)]
pub struct Cli {
    /// Print no progress (errors still go to stderr).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Progress format on stderr: text for people, json for programs (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = EventsFormat::Text)]
    pub events: EventsFormat,
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
}

/// `bridge phones …`
#[derive(Debug, Subcommand)]
pub enum PhonesAction {
    /// Show the linked phones.
    List,
    /// Delete a linked phone.
    Forget {
        /// Its name, as `bridge phones list` shows it.
        name: String,
    },
}

/// The relying party and request.
#[derive(Debug, Args)]
pub struct RpArgs {
    /// W3C options JSON file (PublicKeyCredentialCreationOptionsJSON or …RequestOptionsJSON),
    /// or - for stdin. Flags below are then ignored except --origin.
    #[arg(long)]
    pub options: Option<String>,
    /// Relying party ID, e.g. example.com.
    #[arg(long)]
    pub rp_id: Option<String>,
    /// Web origin (default: https://RP-ID). The RP ID must be its host or a parent domain.
    #[arg(long)]
    pub origin: Option<String>,
    /// Challenge, base64url [default: 32 random bytes].
    #[arg(long)]
    pub challenge: Option<String>,
    /// User verification.
    #[arg(long, value_enum, default_value_t = UvArg::Preferred)]
    pub uv: UvArg,
    /// Write the JSON result here instead of stdout.
    #[arg(long)]
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

/// `bridge register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    rp: RpArgs,
    /// Relying party display name [default: the RP ID].
    #[arg(long)]
    rp_name: Option<String>,
    /// User name (account), e.g. alice@example.com.
    #[arg(long)]
    user_name: Option<String>,
    /// User display name [default: the user name].
    #[arg(long)]
    display_name: Option<String>,
    /// User handle, base64url [default: 16 random bytes].
    #[arg(long)]
    user_id: Option<String>,
    /// Ask for a discoverable credential (a passkey).
    #[arg(long)]
    resident_key: bool,
    /// Request the credProps extension.
    #[arg(long)]
    cred_props: bool,
    /// Request the prf extension.
    #[arg(long)]
    prf: bool,
    /// Credential IDs (base64url) the phone must not already hold.
    #[arg(long)]
    exclude: Vec<String>,
    #[command(flatten)]
    conn: ConnectArgs,
}

/// `bridge sign-in`.
#[derive(Debug, Args)]
pub struct SignInArgs {
    #[command(flatten)]
    rp: RpArgs,
    /// Allowed credential IDs, base64url [default: any passkey for the RP].
    #[arg(long)]
    allow: Vec<String>,
    /// PRF input (base64url) to evaluate.
    #[arg(long)]
    prf_first: Option<String>,
    /// Sign in with this linked phone, without a QR code.
    #[arg(long)]
    phone: Option<String>,
    #[command(flatten)]
    conn: ConnectArgs,
}

/// How to hear and reach the phone, and where the QR code goes.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Listen on the simulated medium (an advert file phone-sim writes) instead of Bluetooth.
    #[arg(long, env = "BRIDGE_ADVERT_FILE")]
    pub advert_file: Option<PathBuf>,
    /// Bluetooth adapter to use, e.g. hci0 [default: the first].
    #[arg(long)]
    pub adapter: Option<String>,
    /// Ignore adverts weaker than this, in dBm (e.g. -80).
    #[arg(long, allow_hyphen_values = true)]
    pub min_rssi: Option<i16>,
    /// Use this relay for every tunnel domain, e.g. ws://127.0.0.1:8080 or wss://relay.example.
    #[arg(long, env = "BRIDGE_TUNNEL_OVERRIDE")]
    pub tunnel_override: Option<String>,
    /// Connect to HOST:PORT for DOMAIN (keeps TLS name and Host header); repeatable.
    #[arg(long, value_name = "DOMAIN=HOST:PORT", value_parser = parse_connect_to)]
    pub connect_to: Vec<(String, String)>,
    /// Extra trusted CA certificates (PEM) for the relay's TLS.
    #[arg(long)]
    pub extra_ca: Option<PathBuf>,
    /// Write the FIDO:/ URL to this file (tools and tests "scan" it from there).
    #[arg(long)]
    pub qr_file: Option<PathBuf>,
    /// Write the QR code as PNG.
    #[arg(long)]
    pub qr_png: Option<PathBuf>,
    /// Write the QR code as SVG.
    #[arg(long)]
    pub qr_svg: Option<PathBuf>,
    /// Don't draw the QR code in the terminal.
    #[arg(long)]
    pub no_qr: bool,
    /// Seconds to wait for the phone's advert after showing the QR code.
    #[arg(long, default_value_t = 120.0)]
    pub advert_timeout: f64,
    /// Seconds to wait for the relay connection.
    #[arg(long, default_value_t = 20.0)]
    pub connect_timeout: f64,
    /// Seconds to wait for the handshake.
    #[arg(long, default_value_t = 20.0)]
    pub handshake_timeout: f64,
    /// Seconds to wait for the person to confirm on the phone.
    #[arg(long, default_value_t = 120.0)]
    pub user_timeout: f64,
    /// Seconds to keep listening after the reply for a late linking update.
    #[arg(long, default_value_t = 3.0)]
    pub linger: f64,
    /// Don't offer or store a link with the phone.
    #[arg(long)]
    pub no_link: bool,
    /// Linked sign-in: ask the relay to signal when the phone connects.
    #[arg(long)]
    pub signal_connection: bool,
}

/// `bridge scan`.
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
    /// Stop after this many seconds [default: run until interrupted].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many adverts.
    #[arg(long)]
    pub count: Option<usize>,
}

fn secs(s: f64, flag: &str) -> Result<Duration, BridgeError> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| BridgeError::Usage(format!("{flag} must be a non-negative number of seconds")))
}

impl ConnectArgs {
    fn config(&self, links: Option<LinkStore>) -> Result<BridgeConfig, BridgeError> {
        Ok(BridgeConfig {
            tunnel: TunnelConfig::new(
                self.tunnel_override.clone(),
                self.connect_to.clone(),
                self.extra_ca.clone(),
            ),
            timeouts: Timeouts {
                advert: secs(self.advert_timeout, "--advert-timeout")?,
                connect: secs(self.connect_timeout, "--connect-timeout")?,
                handshake: secs(self.handshake_timeout, "--handshake-timeout")?,
                user: secs(self.user_timeout, "--user-timeout")?,
                linger: secs(self.linger, "--linger")?,
            },
            links: if self.no_link { None } else { links },
            min_rssi: self.min_rssi,
            signal_connection: self.signal_connection,
        })
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

/// Shows the QR code (terminal, files) when the ceremony reports it, then forwards events.
struct CliProgress<'a> {
    inner: StderrProgress,
    style: ProgressStyle,
    conn: &'a ConnectArgs,
}

impl Progress for CliProgress<'_> {
    fn on_event(&self, event: &Event, elapsed: Duration) {
        if let Event::QrCode { url } = event {
            if let Err(e) = self.show_qr(url) {
                eprintln!("warning: {e:#}");
            }
        }
        self.inner.on_event(event, elapsed);
    }
}

impl CliProgress<'_> {
    fn show_qr(&self, url: &str) -> Result<(), BridgeError> {
        let c = self.conn;
        if let Some(p) = &c.qr_file {
            // Written whole, then renamed, so a reader never sees half a URL.
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, format!("{url}\n"))
                .and_then(|_| std::fs::rename(&tmp, p))
                .map_err(|e| BridgeError::file("writing the QR URL", p, e))?;
        }
        if let Some(p) = &c.qr_png {
            render::write_png(url, p, 8)?;
        }
        if let Some(p) = &c.qr_svg {
            render::write_svg(url, p)?;
        }
        if self.style == ProgressStyle::Text && !c.no_qr {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{}", render::terminal(url)?);
            let _ = writeln!(err, "{url}");
        }
        Ok(())
    }
}

fn read_options(src: &str) -> Result<String, BridgeError> {
    if src == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| {
            BridgeError::file("reading options from", std::path::Path::new("stdin"), e)
        })?;
        Ok(s)
    } else {
        std::fs::read_to_string(src).map_err(|e| {
            BridgeError::file("reading the options file", std::path::Path::new(src), e)
        })
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

fn emit_json(out: Option<&PathBuf>, value: &impl serde::Serialize) -> Result<(), BridgeError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| BridgeError::Internal(e.to_string()))?;
    match out {
        Some(p) => std::fs::write(p, format!("{text}\n"))
            .map_err(|e| BridgeError::file("writing the result", p, e)),
        None => {
            println!("{text}");
            Ok(())
        }
    }
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

    fn links(&self) -> Result<LinkStore, BridgeError> {
        Ok(LinkStore::new(match &self.links_file {
            Some(p) => p.clone(),
            None => LinkStore::default_path()?,
        }))
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), BridgeError> {
    let style = cli.style();
    match &cli.command {
        Command::Register(a) => {
            let options = match &a.rp.options {
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
                            "residentKey": if a.resident_key { "required" } else { "discouraged" },
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
            };
            let config = a.conn.config(Some(cli.links()?))?;
            let mut scanner = open_scanner(
                a.conn.advert_file.as_ref(),
                a.conn.adapter.as_deref(),
                false,
            )
            .await?;
            let progress = CliProgress {
                inner: StderrProgress::new(style),
                style,
                conn: &a.conn,
            };
            let r = webauthn::register(&options, &config, scanner.as_mut(), &progress).await?;
            emit_json(a.rp.out.as_ref(), &r.json)
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
            let config = a.conn.config(Some(cli.links()?))?;
            if let Some(phone) = &a.phone {
                // Fail on an unknown name before touching Bluetooth.
                cli.links()?.get(phone)?;
            }
            let mut scanner = open_scanner(
                a.conn.advert_file.as_ref(),
                a.conn.adapter.as_deref(),
                false,
            )
            .await?;
            let progress = CliProgress {
                inner: StderrProgress::new(style),
                style,
                conn: &a.conn,
            };
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
            emit_json(a.rp.out.as_ref(), &r.json)
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
                        println!("{}\t{}\tlinked at {}", l.name, l.tunnel_domain, l.linked_at);
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
    let mut scanner =
        open_scanner(a.advert_file.as_ref(), a.adapter.as_deref(), a.from_start).await?;
    let deadline = a
        .duration
        .map(|d| secs(d, "--duration"))
        .transpose()?
        .map(|d| tokio::time::Instant::now() + d);
    let mut seen = 0usize;
    println!("UUID  RSSI   LEN  SUFFIX    ADDRESS            MATCH");
    loop {
        if a.count.is_some_and(|c| seen >= c) {
            return Ok(());
        }
        let next = scanner.next_advert();
        let heard = match deadline {
            Some(d) => match tokio::time::timeout_at(d, next).await {
                Ok(h) => h?,
                Err(_) => return Ok(()),
            },
            None => next.await?,
        };
        seen += 1;
        let suffix = if heard.data.len() > eid::ADVERT_LEN {
            format!("{}B", heard.data.len() - eid::ADVERT_LEN)
        } else {
            "-".into()
        };
        let verdict = match &key {
            None => String::new(),
            Some((k, secret)) => match eid::decrypt(k, &heard.data) {
                Ok(m) => format!(
                    "yes: domain {} ({}), routing {}, tunnel {}{}",
                    m.plaintext.domain.0,
                    m.plaintext
                        .domain
                        .name()
                        .unwrap_or_else(|_| "unknown".into()),
                    m.plaintext.routing_id.to_hex(),
                    secret.tunnel_id().to_hex(),
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
}

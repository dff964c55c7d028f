//! `hybrid-bridge doctor`: answers "why does the phone never connect?" with a list of checks,
//! each ✓ or ✗ with what to do next — Bluetooth ([`bluetooth`]: the D-Bus system bus, BlueZ,
//! the adapter and its power, LE scanning, hybrid adverts heard in a short scan), the browser
//! host ([`browser`]: per-browser manifests, the binary they start, the extension they allow),
//! the relays ([`relays`]: DNS, TCP, TLS 1.3 and the `fido.cable` upgrade to Google's and
//! Apple's tunnel domains and to a configured relay, each step timed), the system clock (phones
//! check a QR code's timestamp, docs/PROTOCOL.md#qr-keys), the linked-phones file and the phone
//! as a USB security key ([`key`]: `/dev/uhid` access, the udev rule, the login service, the
//! running key). `--json` prints the same report for a support ticket. Every network step is
//! bounded by `--step-timeout`.

mod bluetooth;
mod browser;
mod key;
mod relays;
mod sandbox;

use std::path::PathBuf;
use std::time::Duration;

use bridge::BridgeError;
use clap::{Args, ValueEnum};
use cli_support::parse_duration;
use serde::Serialize;

use crate::commands::browser::Targets;
use crate::flags::Settings;

/// `hybrid-bridge doctor`.
#[derive(Debug, Args)]
#[command(after_long_help = cli_support::DURATION_FORMS)]
pub(crate) struct DoctorArgs {
    /// Print the report as JSON (for a support ticket).
    #[arg(long)]
    pub(crate) json: bool,
    /// Only these groups of checks (repeatable) [default: all].
    #[arg(long, value_enum)]
    pub(crate) only: Vec<Section>,
    /// Bluetooth adapter to check, e.g. hci0 [default: the first].
    #[arg(long)]
    pub(crate) adapter: Option<String>,
    /// How long to listen for adverts (a phone showing "connecting" should be heard).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "3s")]
    pub(crate) scan_time: Duration,
    /// Also check this relay, e.g. wss://relay.example or ws://127.0.0.1:8080 (repeatable).
    #[arg(long, value_name = "URL")]
    pub(crate) relay: Vec<String>,
    /// The relay you configured for ceremonies (`--tunnel-override`, checked like --relay),
    /// `--connect-to` and `--extra-ca`: the same flags as `register` and `sign-in`.
    #[command(flatten)]
    pub(crate) connection: tunnel_client::RelayArgs,
    /// Skip Google's and Apple's tunnel domains (e.g. on a network that only reaches your relay).
    #[arg(long)]
    pub(crate) no_public_relays: bool,
    /// Bound on each network step (DNS, TCP, TLS, WebSocket upgrade).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub(crate) step_timeout: Duration,
    /// Which browsers' host manifests to check.
    #[command(flatten)]
    pub(crate) browsers: Targets,
}

/// A group of checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Section {
    /// D-Bus, BlueZ, the adapter, scanning, adverts.
    Bluetooth,
    /// The native messaging host manifests.
    Browser,
    /// Tunnel relays.
    Relays,
    /// The system clock.
    Clock,
    /// The linked-phones file.
    Links,
    /// The phone as a USB security key: uhid access, the udev rule, the login service, the
    /// running key's HID node.
    Key,
}

impl Section {
    fn title(self) -> &'static str {
        match self {
            Self::Bluetooth => "Bluetooth",
            Self::Browser => "Browser host",
            Self::Relays => "Relays",
            Self::Clock => "Clock",
            Self::Links => "Linked phones",
            Self::Key => "Security key (hybrid-bridge key)",
        }
    }
}

/// How a check went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// ✓
    Pass,
    /// ✗: something to fix.
    Fail,
    /// ○: worth knowing, not a fault (nothing heard, not installed for a browser).
    Info,
    /// –: not run, because an earlier check failed.
    Skip,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Self::Pass => "✓",
            Self::Fail => "✗",
            Self::Info => "○",
            Self::Skip => "–",
        }
    }
}

/// One check.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Check {
    /// Its group.
    pub(crate) section: Section,
    /// What was checked, e.g. "adapter powered".
    pub(crate) name: String,
    /// How it went.
    pub(crate) status: Status,
    /// What was found.
    pub(crate) detail: String,
    /// What to do next, for a failure (or a hint for info).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<String>,
    /// How long it took, in milliseconds (network steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) elapsed_ms: Option<f64>,
}

impl Check {
    /// A check without timing.
    pub(crate) fn new(
        section: Section,
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            section,
            name: name.into(),
            status,
            detail: detail.into(),
            next: None,
            elapsed_ms: None,
        }
    }

    /// With what to do next.
    pub(crate) fn next(mut self, next: impl Into<String>) -> Self {
        self.next = Some(next.into());
        self
    }

    /// With a duration.
    pub(crate) fn timed(mut self, d: Duration) -> Self {
        self.elapsed_ms = Some(d.as_secs_f64() * 1e3);
        self
    }
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    /// This program's version.
    pub(crate) version: &'static str,
    /// When the checks ran (RFC 3339, UTC).
    pub(crate) at: String,
    /// Every check, in order.
    pub(crate) checks: Vec<Check>,
    /// Number of failed checks.
    pub(crate) failed: usize,
}

impl Report {
    fn new(checks: Vec<Check>) -> Self {
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        Self {
            version: env!("CARGO_PKG_VERSION"),
            at: cli_support::rfc3339(std::time::SystemTime::now()),
            checks,
            failed,
        }
    }

    /// The report for a person: a heading per group, a line per check.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let mut section = None;
        for c in &self.checks {
            if section != Some(c.section) {
                if section.is_some() {
                    out.push('\n');
                }
                out.push_str(c.section.title());
                out.push('\n');
                section = Some(c.section);
            }
            let took = c
                .elapsed_ms
                .map(|ms| format!(" ({ms:.0} ms)"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {} {}: {}{took}\n",
                c.status.mark(),
                c.name,
                c.detail
            ));
            if let Some(n) = &c.next {
                out.push_str(&format!("      → {n}\n"));
            }
        }
        out.push('\n');
        if self.failed == 0 {
            out.push_str("all checks passed\n");
        } else {
            out.push_str(&format!(
                "{} check{} failed; fix the ✗ lines above (→ says how)\n",
                self.failed,
                if self.failed == 1 { "" } else { "s" }
            ));
        }
        out
    }
}

/// Runs the checks and returns the report (printing is the caller's choice).
async fn checks(args: &DoctorArgs, links_file: Option<PathBuf>) -> Report {
    let wanted = |s: Section| args.only.is_empty() || args.only.contains(&s);
    let mut checks = Vec::new();
    if wanted(Section::Bluetooth) {
        checks.extend(bluetooth::checks(args.adapter.as_deref(), args.scan_time).await);
    }
    if wanted(Section::Browser) {
        checks.extend(browser::checks(&args.browsers));
    }
    let mut dates = Vec::new();
    if wanted(Section::Relays) || wanted(Section::Links) || wanted(Section::Clock) {
        let (relay_checks, seen) = relays::checks(args, links_file, &wanted).await;
        dates = seen;
        checks.extend(relay_checks);
    }
    if wanted(Section::Clock) {
        checks.extend(relays::clock(std::time::SystemTime::now(), &dates));
    }
    if wanted(Section::Key) {
        checks.extend(key::checks());
    }
    Report::new(checks)
}

impl DoctorArgs {
    /// Prints the report; fails (exit 1) when a check failed.
    pub(crate) async fn run(&self, s: &Settings) -> Result<(), BridgeError> {
        run(self, s.links_file.clone()).await
    }
}

/// `hybrid-bridge doctor`: prints the report; fails (exit 1) when a check failed.
async fn run(args: &DoctorArgs, links_file: Option<PathBuf>) -> Result<(), BridgeError> {
    use std::io::Write as _;
    let report = checks(args, links_file).await;
    let text = if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| BridgeError::Internal(e.to_string()))?;
        format!("{json}\n")
    } else {
        report.to_text()
    };
    // A closed pipe (`doctor | head`) is not worth a panic; the exit code still says it all.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if report.failed > 0 {
        return Err(BridgeError::Internal(format!(
            "doctor: {} check{} failed",
            report.failed,
            if report.failed == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

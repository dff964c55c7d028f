//! The subcommands, one module each: its flags (a clap `Args` struct) and its `run`. The
//! [`Command`] enum lists them in the order `--help` shows them, each variant's doc line being
//! the command's one-line help, and [`Command::run`] hands each to its module.
//!
//! Adding a command (say `hybrid-bridge export`) takes one new file and one variant:
//! 1. `commands/export.rs`: `pub(crate) struct ExportArgs` deriving `clap::Args` (flags with their
//!    help beside them; flatten [`crate::flags::SessionArgs`] or the other shared groups of
//!    [`crate::flags`] where they fit) and `impl ExportArgs { pub(crate) async fn run(&self, s:
//!    &Settings) -> Result<(), BridgeError> }`. Ceremony work goes through the `bridge`
//!    library; [`ceremony::prepare`] gives a QR ceremony its settings, scanner and display.
//! 2. Here: `mod export;`, the variant `Export(export::ExportArgs)` with its doc line in
//!    [`Command`], and its arm `Self::Export(a) => a.run(s).await` in [`Command::run`] (the
//!    compiler asks for it).
//!
//! Errors are [`BridgeError`]s; their exit codes and the way they are shown are `crate::failure`'s.

mod browser;
mod ceremony;
mod completions;
mod doctor;
pub(crate) mod key;
mod native_host;
mod phones;
mod register;
mod scan;
mod sign_in;

use bridge::BridgeError;
use clap::Subcommand;

use crate::display::PhaseTracker;
use crate::flags::Settings;

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a passkey on a phone (WebAuthn registration); prints RegistrationResponseJSON.
    Register(register::RegisterArgs),
    /// Sign in with a passkey on a phone; prints AuthenticationResponseJSON.
    SignIn(sign_in::SignInArgs),
    /// List or forget linked phones.
    Phones(phones::PhonesArgs),
    /// List the hybrid adverts heard, live; with --qr or --qr-secret, say which decrypt.
    Scan(scan::ScanArgs),
    /// The browser extension's native messaging host (the browser starts it; see `browser`).
    NativeHost(native_host::HostArgs),
    /// Install or remove the native messaging host for Chromium, Chrome and Firefox.
    Browser(browser::BrowserArgs),
    /// Your phone as a USB security key for every FIDO program (browsers, OpenSSH, libfido2).
    Key(key::KeyArgs),
    /// Check Bluetooth, the browser host, relays, the clock, linked phones and the security
    /// key; say what to fix.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script, e.g. `hybrid-bridge completions bash`.
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff), e.g. `hybrid-bridge man | man -l -`.
    Man(completions::ManArgs),
}

impl Command {
    /// Runs the command. `phase` records the last phase a ceremony entered, for the error
    /// report.
    pub(crate) async fn run(&self, s: &Settings, phase: &PhaseTracker) -> Result<(), BridgeError> {
        match self {
            Self::Register(a) => a.run(s, phase).await,
            Self::SignIn(a) => a.run(s, phase).await,
            Self::Phones(a) => a.run(s),
            Self::Scan(a) => a.run().await,
            Self::NativeHost(a) => a.run(s).await,
            Self::Browser(a) => a.run(),
            Self::Key(a) => a.run(s).await,
            Self::Doctor(a) => a.run(s).await,
            Self::Completions(a) => a.run(),
            Self::Man(a) => a.run(),
        }
    }
}

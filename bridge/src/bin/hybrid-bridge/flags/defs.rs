//! The flags as clap declares them, with their help text: the global flags ([`GlobalArgs`]),
//! the long help's examples ([`EXAMPLES`]) and the groups the ceremony commands flatten
//! ([`RpArgs`], [`CredentialArgs`], [`AssertionArgs`], [`ConnectArgs`]). Raw values only:
//! nothing here reads a file or opens a device ([`super::settings`] does). The subcommands and
//! their own flags are `crate::commands::Command`. A flag that takes base64url allows a value
//! beginning with `-` (`allow_hyphen_values`): one random challenge or ID in 64 begins so.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use cli_support::ColorChoice;

use super::session::SessionArgs;

/// The top-level long help after the flags: examples, duration forms, exit codes.
pub(crate) const EXAMPLES: &str = concat!(
    "\
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

",
    cli_support::duration_forms!(),
    "

Exit codes: 0 ok, 1 local failure, 2 bad usage, 3 a stage timed out, 4 Bluetooth,
5 tunnel relay, 6 phone protocol error, 7 refused on the phone, 8 linked phone gone."
);

/// The flags every subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Print no progress (the QR code and errors still show).
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,
    /// Progress format on stderr: text for people, json for programs (one object per line,
    /// ending with a `result` or an `error` event).
    #[arg(long, global = true, value_enum, default_value_t = EventsFormat::Text)]
    pub(crate) events: EventsFormat,
    /// Colour (the terminal QR code, logs): auto uses it on a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// The linked-phones file [default: $XDG_DATA_HOME/hybrid-bridge/links.json].
    #[arg(long, global = true, env = "BRIDGE_LINKS_FILE")]
    pub(crate) links_file: Option<PathBuf>,
}

/// Progress formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum EventsFormat {
    /// Lines for a person.
    Text,
    /// JSON lines.
    Json,
}

/// The relying party and request.
#[derive(Debug, Args)]
pub(crate) struct RpArgs {
    /// W3C options JSON file (PublicKeyCredentialCreationOptionsJSON or …RequestOptionsJSON),
    /// or - for stdin. Flags below are then ignored except --origin.
    #[arg(long, value_name = "FILE", help_heading = "Relying party")]
    pub(crate) options: Option<String>,
    /// Relying party ID, e.g. example.com.
    #[arg(long, value_name = "DOMAIN", help_heading = "Relying party")]
    pub(crate) rp_id: Option<String>,
    /// Web origin (default: https://RP-ID). The RP ID must be its host or a parent domain.
    #[arg(long, value_name = "URL", help_heading = "Relying party")]
    pub(crate) origin: Option<String>,
    /// Challenge, base64url [default: 32 random bytes].
    #[arg(
        long,
        value_name = "BASE64URL",
        allow_hyphen_values = true,
        help_heading = "Relying party"
    )]
    pub(crate) challenge: Option<String>,
    /// User verification.
    #[arg(long, value_enum, default_value_t = UvArg::Preferred, help_heading = "Relying party")]
    pub(crate) uv: UvArg,
    /// Write the JSON result here instead of stdout (checked before the QR code shows; if
    /// writing still fails, the result goes to stdout).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

/// `--uv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum UvArg {
    /// Required.
    Required,
    /// Preferred.
    Preferred,
    /// Discouraged.
    Discouraged,
}

impl From<UvArg> for bridge::UserVerification {
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
pub(crate) enum ResidentKeyArg {
    /// A discoverable credential (a passkey): sign in without naming it.
    Required,
    /// Discoverable if the phone can.
    Preferred,
    /// A server-side credential: signing in needs its ID (--allow).
    Discouraged,
}

/// `register`'s flags for the credential to create (the relying party's side of
/// PublicKeyCredentialCreationOptions).
#[derive(Debug, Args)]
pub(crate) struct CredentialArgs {
    /// Relying party display name [default: the RP ID].
    #[arg(long, value_name = "NAME", help_heading = "Relying party")]
    pub(crate) rp_name: Option<String>,
    /// User name (account), e.g. alice@example.com.
    #[arg(long, value_name = "NAME", help_heading = "Relying party")]
    pub(crate) user_name: Option<String>,
    /// User display name [default: the user name].
    #[arg(long, value_name = "NAME", help_heading = "Relying party")]
    pub(crate) display_name: Option<String>,
    /// User handle, base64url [default: 16 random bytes].
    #[arg(
        long,
        value_name = "BASE64URL",
        allow_hyphen_values = true,
        help_heading = "Relying party"
    )]
    pub(crate) user_id: Option<String>,
    /// What kind of credential to ask for: required makes a passkey that `sign-in --rp-id`
    /// finds without naming it.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = ResidentKeyArg::Required, help_heading = "Relying party")]
    pub(crate) resident_key: ResidentKeyArg,
    /// Request the credProps extension.
    #[arg(long, help_heading = "Relying party")]
    pub(crate) cred_props: bool,
    /// Request the prf extension.
    #[arg(long, help_heading = "Relying party")]
    pub(crate) prf: bool,
    /// Credential IDs (base64url) the phone must not already hold.
    #[arg(
        long,
        value_name = "BASE64URL",
        allow_hyphen_values = true,
        help_heading = "Relying party"
    )]
    pub(crate) exclude: Vec<String>,
}

/// `sign-in`'s flags for the assertion to ask for (the relying party's side of
/// PublicKeyCredentialRequestOptions).
#[derive(Debug, Args)]
pub(crate) struct AssertionArgs {
    /// Allowed credential IDs, base64url [default: any passkey for the RP].
    #[arg(
        long,
        value_name = "BASE64URL",
        allow_hyphen_values = true,
        help_heading = "Relying party"
    )]
    pub(crate) allow: Vec<String>,
    /// PRF input (base64url) to evaluate.
    #[arg(
        long,
        value_name = "BASE64URL",
        allow_hyphen_values = true,
        help_heading = "Relying party"
    )]
    pub(crate) prf_first: Option<String>,
}

/// How to hear and reach the phone ([`SessionArgs`], which it derefs to), and where the QR
/// code goes.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    pub(crate) session: SessionArgs,
    /// Write the FIDO:/ URL to this file (tools and tests "scan" it from there).
    #[arg(long, value_name = "FILE", help_heading = "QR code")]
    pub(crate) qr_file: Option<PathBuf>,
    /// Write the QR code as PNG.
    #[arg(long, value_name = "FILE", help_heading = "QR code")]
    pub(crate) qr_png: Option<PathBuf>,
    /// Write the QR code as SVG.
    #[arg(long, value_name = "FILE", help_heading = "QR code")]
    pub(crate) qr_svg: Option<PathBuf>,
    /// Don't draw the QR code in the terminal.
    #[arg(long, help_heading = "QR code")]
    pub(crate) no_qr: bool,
}

impl std::ops::Deref for ConnectArgs {
    type Target = SessionArgs;
    fn deref(&self) -> &SessionArgs {
        &self.session
    }
}

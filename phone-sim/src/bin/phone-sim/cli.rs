//! The `phone-sim` command line (docs/STYLE.md#cli: raw clap args, then a resolved
//! [`PhoneConfig`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cli_support::{human_date, parse_duration};
use tunnel_client::RelayArgs;

use hybrid_protocol::text::escape_controls as shown;
use phone_sim::Operation;
use phone_sim::Phone;
use phone_sim::PhoneError;
use phone_sim::Store;
use phone_sim::{AdvertFault, AdvertFile, Advertiser, MediumKnobs};
use phone_sim::{Approve, Attestation, CredentialKind};
use phone_sim::{BleChannel, PhoneConfig};

const ABOUT: &str =
    "Plays the phone in a FIDO hybrid (caBLE v2) sign-in: scans the desktop's QR code, \
opens the tunnel on a relay, advertises on a simulated BLE medium (an advert file) and answers \
one CTAP2 request as a software authenticator.";

const AFTER: &str = concat!(
    "\
Examples:
  # a local relay and the bridge, all on this machine
  tunnel-server serve --listen 127.0.0.1:8080 --insecure-plaintext &
  hybrid-bridge register --rp-id example.com --user-name alice \\
      --tunnel-override ws://127.0.0.1:8080 --advert-file /tmp/adverts --qr-file /tmp/qr.txt &
  phone-sim --store /tmp/phone.json scan --qr-file /tmp/qr.txt \\
      --tunnel-override ws://127.0.0.1:8080 --advert-file /tmp/adverts

  # serve sessions from desktops that linked this phone
  phone-sim --store /tmp/phone.json linked --tunnel-override ws://127.0.0.1:8080 --advert-file /tmp/adverts

  # look after the store
  phone-sim --store /tmp/phone.json credentials list
  phone-sim --store /tmp/phone.json links revoke 3f2a

",
    cli_support::duration_forms!()
);

/// `phone-sim`: the phone side of FIDO hybrid sign-in.
#[derive(Debug, Parser)]
#[command(name = "phone-sim", version, about = ABOUT, after_help = AFTER)]
pub(crate) struct Cli {
    /// The phone's credential store (one JSON file per phone identity; created if missing).
    #[arg(
        long,
        global = true,
        env = "PHONE_SIM_STORE",
        default_value = "phone-sim.json"
    )]
    pub(crate) store: PathBuf,
    /// Log filter (e.g. `debug`, `phone_sim=trace`); also `RUST_LOG`.
    #[arg(long, global = true, default_value = "info")]
    pub(crate) log: String,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The modes.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Scan a QR code and serve that one session.
    #[command(after_help = concat!(
        "Examples:
  phone-sim scan --qr 'FIDO:/0123...' --tunnel-override ws://127.0.0.1:8080 --advert-file /tmp/adverts
  phone-sim scan --qr-image qr.png --advert-file /tmp/adverts --approve prompt
  phone-sim scan --qr-file qr.txt --advert-file /tmp/adverts --fault corrupt-tag --timeout 5s

",
        cli_support::duration_forms!()
    ))]
    Scan(ScanArgs),
    /// Register with the relay's contact channel and serve linked (state-assisted) sessions.
    #[command(after_help = concat!(
        "Example:
  phone-sim linked --tunnel-override ws://127.0.0.1:8080 --advert-file /tmp/adverts --sessions 1

The phone first needs a QR session whose QR allowed linking, so that the desktop holds a link.
`--revoke` tells the relay to forget this phone's contact ID (every link dies) and exits.

",
        cli_support::duration_forms!()
    ))]
    Linked(LinkedArgs),
    /// List or delete stored credentials.
    Credentials {
        /// list | delete
        #[command(subcommand)]
        action: CredentialsAction,
    },
    /// List or revoke links handed to desktops.
    Links {
        /// list | revoke
        #[command(subcommand)]
        action: LinksAction,
    },
    /// Print a shell completion script, e.g. `phone-sim completions bash`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `phone-sim man | man -l -`.
    Man,
}

/// `credentials` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum CredentialsAction {
    /// One line per credential: ID, RP, user, discoverable, synced or device-bound, created.
    List,
    /// Delete a credential by its base64url ID (a unique prefix is enough).
    Delete {
        /// Credential ID (base64url) or a unique prefix; it may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

/// `links` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum LinksAction {
    /// One line per link: link ID, contact ID, desktop key, created.
    List,
    /// Forget a link (hex ID or unique prefix); wake-ups for it are then ignored.
    Revoke {
        /// Link ID (hex) or a unique prefix.
        id: String,
    },
}

/// Where the QR code comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct QrSource {
    /// The QR text, `FIDO:/<digits>`.
    #[arg(long, value_name = "URL")]
    pub(crate) qr: Option<String>,
    /// A file holding the QR text (`-` = standard input).
    #[arg(long, value_name = "FILE")]
    pub(crate) qr_file: Option<PathBuf>,
    /// A PNG image of the QR code.
    #[arg(long, value_name = "FILE")]
    pub(crate) qr_image: Option<PathBuf>,
}

/// Relay, medium and behaviour flags shared by `scan` and `linked`.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The relay (its base URL replaces the tunnel domain's host; the advert still names
    /// --domain, so the desktop must use the same override).
    #[command(flatten)]
    pub(crate) relay: RelayArgs,
    /// Tunnel domain number put in the advert: 0 (cable.ua5v.com), 1 (cable.auth.com) or ≥ 256.
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Relay")]
    pub(crate) domain: u16,
    /// Write adverts to this file, the simulated BLE medium, instead of Bluetooth (the bridge
    /// listens on it with its own --advert-file). Also accepted as --medium-file.
    #[arg(
        long = "advert-file",
        alias = "medium-file",
        value_name = "FILE",
        env = "PHONE_SIM_MEDIUM",
        required_unless_present = "bluez",
        help_heading = "Bluetooth"
    )]
    pub(crate) medium_file: Option<PathBuf>,
    /// Advertise through BlueZ (D-Bus) instead of an advert file (cargo feature `bluez`).
    #[arg(long, conflicts_with = "medium_file", help_heading = "Bluetooth")]
    pub(crate) bluez: bool,
    /// Advertise on this BlueZ adapter, e.g. hci0 [default: hci0, else the first].
    #[arg(long, requires = "bluez", help_heading = "Bluetooth")]
    pub(crate) adapter: Option<String>,
    /// Time between adverts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "100ms", help_heading = "Bluetooth")]
    pub(crate) interval: Duration,
    /// Time between adverts in milliseconds (older spelling of --interval).
    #[arg(long, value_name = "MS", hide = true, conflicts_with = "interval")]
    pub(crate) interval_ms: Option<u64>,
    /// RSSI in dBm written with each advert.
    #[arg(long, value_name = "DBM", default_value_t = -58, allow_hyphen_values = true, help_heading = "Bluetooth")]
    pub(crate) rssi: i16,
    /// Fraction (0..1) of adverts dropped.
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.0,
        help_heading = "Bluetooth"
    )]
    pub(crate) drop: f64,
    /// Seed for the dropped adverts.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "Bluetooth"
    )]
    pub(crate) seed: u64,
    /// Silence before the first advert.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s", help_heading = "Bluetooth")]
    pub(crate) first_advert_delay: Duration,
    /// Silence before the first advert in milliseconds (older spelling).
    #[arg(long, hide = true, conflicts_with = "first_advert_delay")]
    pub(crate) first_advert_delay_ms: Option<u64>,
    /// Deliberate advert fault, to test desktops.
    #[arg(long, value_enum)]
    pub(crate) fault: Option<FaultArg>,
    /// The CTAP 2.3 Bluetooth channel: offer (listen on an L2CAP PSM and announce it when the
    /// QR code lists the channel, as a CTAP 2.3 phone does; without a relay it is the only way
    /// in), off (a phone from before CTAP 2.3) or refuse (announce a PSM nobody listens on, to
    /// test a desktop's fallback to the relay).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = BleChannelArg::Offer, help_heading = "Bluetooth")]
    pub(crate) ble_channel: BleChannelArg,
    /// Service UUID of the adverts, 4 hex digits (phones use fff9, older ones fde2).
    #[arg(long, value_name = "UUID16", value_parser = uuid16, default_value = "fff9", help_heading = "Bluetooth")]
    pub(crate) advert_uuid: u16,
    /// Extra bytes (hex) appended to every advert's service data, to test desktops with
    /// adverts longer than phones send today.
    #[arg(long, value_name = "HEX", value_parser = hex_bytes, help_heading = "Bluetooth")]
    pub(crate) advert_extra: Option<HexBytes>,
    /// The simulated user's answer: auto (approve), deny, or prompt (ask y/n on the terminal).
    #[arg(long, value_enum, default_value_t = ApproveArg::Auto)]
    pub(crate) approve: ApproveArg,
    /// makeCredential attestation: none, packed (self), packed-x5c (a certificate chain from an
    /// attestation CA made for this run; --attestation-ca-out writes the CA) or unknown (a
    /// format no relying party knows, to test clients).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = AttestationArg::None)]
    pub(crate) attestation: AttestationArg,
    /// With --attestation packed-x5c: write this run's attestation CA certificate (PEM) here,
    /// for a relying party to trust.
    #[arg(long, value_name = "FILE")]
    pub(crate) attestation_ca_out: Option<PathBuf>,
    /// Kind of credential makeCredential creates: synced (a passkey the provider backs up:
    /// flags BE and BS set) or device-bound (BE and BS clear). Each credential keeps its kind.
    #[arg(long, value_name = "KIND", value_enum, default_value_t = KindArg::Synced)]
    pub(crate) credential_kind: KindArg,
    /// How long to wait for the desktop at each step.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    pub(crate) timeout: Duration,
    /// Display name sent in linking info.
    #[arg(long, value_name = "NAME", default_value = "phone-sim")]
    pub(crate) name: String,
}

/// `scan` flags.
#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    #[command(flatten)]
    qr: QrSource,
    #[command(flatten)]
    common: Common,
    /// Do not send linking info even if the QR code allows it.
    #[arg(long)]
    no_link: bool,
}

/// `linked` flags.
#[derive(Debug, Args)]
pub(crate) struct LinkedArgs {
    #[command(flatten)]
    common: Common,
    /// Exit after this many sessions (default: serve forever).
    #[arg(long)]
    sessions: Option<usize>,
    /// Revoke this phone's contact ID at the relay and exit.
    #[arg(long)]
    revoke: bool,
}

/// `--ble-channel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BleChannelArg {
    /// Offer the channel when the QR code lists it.
    Offer,
    /// Never offer it.
    Off,
    /// Announce a PSM nobody listens on.
    Refuse,
}

fn uuid16(s: &str) -> Result<u16, String> {
    if s.len() != 4 {
        return Err(format!("{s:?} is not 4 hex digits"));
    }
    u16::from_str_radix(s, 16).map_err(|_| format!("{s:?} is not 4 hex digits"))
}

/// Bytes given in hex on the command line (one value, not a list of bytes to clap).
#[derive(Clone, Debug)]
pub(crate) struct HexBytes(pub(crate) Vec<u8>);

fn hex_bytes(s: &str) -> Result<HexBytes, String> {
    let b = hex::decode(s).map_err(|e| format!("{s:?} is not hex: {e}"))?;
    if b.len() > 200 {
        return Err("at most 200 extra bytes".into());
    }
    Ok(HexBytes(b))
}

/// `--fault`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum FaultArg {
    /// Encrypt under a random key (tag mismatch).
    WrongKey,
    /// Flip a bit of the HMAC tag.
    CorruptTag,
    /// Set reserved byte 0 of the plaintext.
    ReservedBit,
    /// Put unknown domain 7 in the plaintext.
    UnknownDomain,
}

/// `--approve`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ApproveArg {
    /// Approve everything.
    Auto,
    /// Decline everything.
    Deny,
    /// Ask on the terminal.
    Prompt,
}

/// `--attestation`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum AttestationArg {
    /// fmt "none".
    None,
    /// Packed self attestation.
    Packed,
    /// Packed with an x5c chain from this run's attestation CA.
    PackedX5c,
    /// A format no registry knows ("x-phone-sim").
    Unknown,
}

/// `--credential-kind`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum KindArg {
    /// A synced passkey (BE and BS set).
    Synced,
    /// Device-bound (BE and BS clear).
    DeviceBound,
}

impl Common {
    fn config(&self, link: bool) -> PhoneConfig {
        PhoneConfig {
            tunnel: self.relay.tunnel_override.clone(),
            connect_to: self.relay.connect_to.clone(),
            extra_ca: self.relay.extra_ca.clone(),
            domain: self.domain,
            approve: match self.approve {
                ApproveArg::Auto => Approve::Auto,
                ApproveArg::Deny => Approve::Deny,
                ApproveArg::Prompt => Approve::Prompt,
            },
            attestation: match self.attestation {
                AttestationArg::None => Attestation::None,
                AttestationArg::Packed => Attestation::Packed,
                AttestationArg::PackedX5c => Attestation::PackedX5c,
                AttestationArg::Unknown => Attestation::Unknown,
            },
            credential_kind: match self.credential_kind {
                KindArg::Synced => CredentialKind::Synced,
                KindArg::DeviceBound => CredentialKind::DeviceBound,
            },
            fault: self.fault.map(|f| match f {
                FaultArg::WrongKey => AdvertFault::WrongKey,
                FaultArg::CorruptTag => AdvertFault::CorruptTag,
                FaultArg::ReservedBit => AdvertFault::ReservedBit,
                FaultArg::UnknownDomain => AdvertFault::UnknownDomain,
            }),
            link,
            name: self.name.clone(),
            timeout: self.timeout,
            ble_channel: match self.ble_channel {
                BleChannelArg::Offer => BleChannel::Offer,
                BleChannelArg::Off => BleChannel::Off,
                BleChannelArg::Refuse => BleChannel::Refuse,
            },
            advert_uuid: self.advert_uuid,
            advert_extra: self.advert_extra.clone().map(|h| h.0).unwrap_or_default(),
        }
    }

    /// `--attestation-ca-out`: writes this run's attestation CA (PEM) before any session.
    fn write_attestation_ca(&self, phone: &mut Phone) -> Result<(), PhoneError> {
        let Some(path) = &self.attestation_ca_out else {
            return Ok(());
        };
        if !matches!(self.attestation, AttestationArg::PackedX5c) {
            return Err(PhoneError::Config(
                "--attestation-ca-out needs --attestation packed-x5c".into(),
            ));
        }
        let pem = phone.make_attestation_ca()?.ca_pem().to_string();
        std::fs::write(path, pem).map_err(PhoneError::file("writing the attestation CA to", path))
    }

    async fn medium(&self) -> Result<Box<dyn Advertiser>, PhoneError> {
        if self.bluez {
            #[cfg(feature = "bluez")]
            return Ok(Box::new(
                phone_sim::BluezAdvertiser::new(self.adapter.as_deref()).await?,
            ));
            #[cfg(not(feature = "bluez"))]
            return Err(PhoneError::Config(
                "this phone-sim was built without BlueZ; rebuild with `--features bluez`".into(),
            ));
        }
        let Some(path) = &self.medium_file else {
            return Err(PhoneError::Config("give --advert-file or --bluez".into()));
        };
        Ok(Box::new(AdvertFile::new(
            path,
            MediumKnobs {
                interval: self
                    .interval_ms
                    .map_or(self.interval, Duration::from_millis),
                rssi: Some(self.rssi),
                drop_fraction: self.drop,
                seed: self.seed,
                first_delay: self
                    .first_advert_delay_ms
                    .map_or(self.first_advert_delay, Duration::from_millis),
            },
        )?))
    }
}

/// Runs a parsed command line; the binary maps the error to exit code 1.
pub(crate) async fn run(cli: Cli) -> Result<(), PhoneError> {
    match cli.command {
        Command::Scan(a) => {
            let qr = match (&a.qr.qr, &a.qr.qr_file, &a.qr.qr_image) {
                (Some(t), _, _) => phone_sim::qr_from_text(t)?,
                (_, Some(f), _) => phone_sim::qr_from_file(f)?,
                (_, _, Some(i)) => phone_sim::qr_from_image(i)?,
                _ => {
                    return Err(PhoneError::Config(
                        "give --qr, --qr-file or --qr-image".into(),
                    ))
                }
            };
            let mut medium = a.common.medium().await?;
            let mut phone = Phone::open(&cli.store, a.common.config(!a.no_link))?;
            a.common.write_attestation_ca(&mut phone)?;
            let outcome = phone.serve_qr(&qr, medium.as_mut()).await?;
            println!("{}", describe(&outcome.operation));
            if let Operation::MadeCredential { credential_id, .. } = &outcome.operation {
                println!("{}", kind_of(&phone, credential_id));
            }
            if let Some(l) = outcome.link_id {
                println!("linked: link {}", hex::encode(l));
            }
            Ok(())
        }
        Command::Linked(a) => {
            let mut medium = a.common.medium().await?;
            let mut phone = Phone::open(&cli.store, a.common.config(true))?;
            a.common.write_attestation_ca(&mut phone)?;
            if a.revoke {
                phone.revoke_contact().await?;
                println!("contact ID revoked; every link is dead");
                return Ok(());
            }
            for r in phone.serve_linked(medium.as_mut(), a.sessions).await? {
                match r {
                    Ok(o) => println!("{}", describe(&o.operation)),
                    Err(e) => println!("session failed: {e}"),
                }
            }
            Ok(())
        }
        Command::Credentials { action } => {
            let mut store = Store::load(&cli.store)?;
            match action {
                CredentialsAction::List => {
                    for c in store.credentials() {
                        println!(
                            "{}  {}  {}  {}  {}  created {}",
                            c.id,
                            shown(&c.rp_id),
                            shown(c.user_name.as_deref().unwrap_or("-")),
                            if c.discoverable {
                                "discoverable"
                            } else {
                                "non-discoverable"
                            },
                            match c.kind {
                                CredentialKind::Synced => "synced",
                                CredentialKind::DeviceBound => "device-bound",
                            },
                            human_date(c.created_at)
                        );
                    }
                }
                CredentialsAction::Delete { id } => {
                    let c = store.delete_credential(&id)?;
                    store.save()?;
                    println!("deleted {} ({})", c.id, shown(&c.rp_id));
                }
            }
            Ok(())
        }
        Command::Links { action } => {
            let mut store = Store::load(&cli.store)?;
            match action {
                LinksAction::List => {
                    for l in store.links() {
                        println!(
                            "{}  contact {}…  desktop {}  created {}",
                            l.link_id,
                            l.contact_id.chars().take(8).collect::<String>(),
                            l.desktop_key,
                            human_date(l.created_at)
                        );
                    }
                }
                LinksAction::Revoke { id } => {
                    let l = store.revoke_link(&id)?;
                    store.save()?;
                    println!("revoked link {}", l.link_id);
                }
            }
            Ok(())
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "phone-sim", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut std::io::stdout())
            .map_err(PhoneError::file(
                "writing the manual page to",
                "stdout".as_ref(),
            )),
    }
}

/// Whether the credential just made is a passkey (discoverable: the desktop can sign in
/// without naming it) or a server-side credential (the relying party must send its ID).
fn kind_of(phone: &Phone, credential_id: &[u8]) -> String {
    use base64::Engine as _;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(credential_id);
    match phone.store().credentials().iter().find(|c| c.id == id) {
        Some(c) => {
            let what = if c.discoverable {
                "discoverable (a passkey: sign in with just the RP ID)"
            } else {
                "non-discoverable (signing in needs its credential ID, --allow)"
            };
            let backup = match c.kind {
                CredentialKind::Synced => "synced (backup flags BE and BS set)",
                CredentialKind::DeviceBound => "device-bound (backup flags BE and BS clear)",
            };
            format!("kind: {what}; {backup}")
        }
        None => "kind: unknown (not found in the store)".into(),
    }
}

fn describe(op: &Operation) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    match op {
        Operation::MadeCredential {
            rp_id,
            credential_id,
        } => format!(
            "created a credential for {}: {}",
            shown(rp_id),
            b64(credential_id)
        ),
        Operation::GotAssertion {
            rp_id,
            credential_id,
        } => format!("signed in to {} with {}", shown(rp_id), b64(credential_id)),
        Operation::Refused { status } => format!("answered {status:?}: {}", status.explain()),
        Operation::Selected => "selected by the desktop (authenticatorSelection)".into(),
        Operation::NoRequest => "the desktop shut down without a request".into(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn scan_config(extra: &[&str]) -> Result<PhoneConfig, clap::Error> {
        let mut argv = vec!["phone-sim", "scan", "--qr", "FIDO:/1", "--advert-file", "a"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv)?;
        let Command::Scan(a) = cli.command else {
            panic!("not the scan command")
        };
        Ok(a.common.config(true))
    }

    #[test]
    fn a_credential_id_beginning_with_a_hyphen_is_a_value() {
        let cli = Cli::try_parse_from(["phone-sim", "credentials", "delete", "-Uab_AQ"]).unwrap();
        let Command::Credentials {
            action: CredentialsAction::Delete { id },
        } = cli.command
        else {
            panic!("not credentials delete")
        };
        assert_eq!(id, "-Uab_AQ");
    }

    #[test]
    fn advert_and_ble_channel_flags() {
        let c = scan_config(&[]).unwrap();
        assert_eq!(
            (c.ble_channel, c.advert_uuid, c.advert_extra.len()),
            (BleChannel::Offer, 0xfff9, 0)
        );
        let c = scan_config(&[
            "--ble-channel",
            "refuse",
            "--advert-uuid",
            "FDE2",
            "--advert-extra",
            "ff0011",
        ])
        .unwrap();
        assert_eq!(
            (c.ble_channel, c.advert_uuid, c.advert_extra),
            (BleChannel::Refuse, 0xfde2, vec![0xff, 0x00, 0x11])
        );
        for bad in [
            &["--advert-uuid", "fff"][..],
            &["--advert-uuid", "zzzz"],
            &["--advert-extra", "f"],
            &["--ble-channel", "sometimes"],
        ] {
            assert!(scan_config(bad).is_err(), "{bad:?}");
        }
    }
}

//! The flags every command that reaches a phone shares (Bluetooth, the relay, the timeouts and
//! linking), as one clap [`SessionArgs`] that `register`, `sign-in` (through
//! [`super::ConnectArgs`]) and the browser's `native-host` flatten, and the ceremony settings
//! they give.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tunnel_client::RelayArgs;

use bridge::{BridgeConfig, ChannelChoice, LinkStore, Timeouts};
use cli_support::parse_duration;

/// How to hear and reach the phone: Bluetooth, the relay, the timeouts and linking. Shared by
/// `register`, `sign-in` ([`super::ConnectArgs`]) and the browser's `native-host`.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct SessionArgs {
    /// Listen on the simulated medium (an advert file phone-sim writes) instead of Bluetooth.
    #[arg(
        long,
        value_name = "FILE",
        env = "BRIDGE_ADVERT_FILE",
        help_heading = "Bluetooth"
    )]
    pub(crate) advert_file: Option<PathBuf>,
    /// Bluetooth adapter to use, e.g. hci0 [default: the first].
    #[arg(long, value_name = "NAME", help_heading = "Bluetooth")]
    pub(crate) adapter: Option<String>,
    /// Ignore adverts weaker than this, in dBm (e.g. -80).
    #[arg(
        long,
        value_name = "DBM",
        allow_hyphen_values = true,
        help_heading = "Bluetooth"
    )]
    pub(crate) min_rssi: Option<i16>,
    /// Which data channel to use: `relay` (the tunnel relay only; the QR code works with every
    /// phone), `auto` (also offer the CTAP 2.3 Bluetooth channel and use it when the phone
    /// offers one, the relay otherwise) or `ble` (the Bluetooth channel only: no relay, no
    /// internet). Linked phones always use the relay.
    #[arg(long, value_name = "CHANNEL", env = "BRIDGE_CHANNEL", default_value = "relay",
          value_parser = clap::builder::PossibleValuesParser::new(ChannelChoice::NAMES),
          help_heading = "Bluetooth")]
    pub(crate) channel: String,
    /// The relay.
    #[command(flatten)]
    pub(crate) relay: RelayArgs,
    /// How long to wait for the phone's advert after showing the QR code.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m", help_heading = "Timeouts")]
    pub(crate) advert_timeout: Duration,
    /// How long to wait for the relay connection.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "20s", help_heading = "Timeouts")]
    pub(crate) connect_timeout: Duration,
    /// How long to wait for the phone's Bluetooth channel to connect before using the relay.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s", help_heading = "Timeouts")]
    pub(crate) ble_connect_timeout: Duration,
    /// How long to wait for the handshake.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "20s", help_heading = "Timeouts")]
    pub(crate) handshake_timeout: Duration,
    /// How long to wait for the person to confirm on the phone.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m", help_heading = "Timeouts")]
    pub(crate) user_timeout: Duration,
    /// How long to keep listening after the reply for a late linking update.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "3s", help_heading = "Timeouts")]
    pub(crate) linger: Duration,
    /// Don't offer or store a link with the phone.
    #[arg(long, help_heading = "Linked phones")]
    pub(crate) no_link: bool,
    /// Linked sign-in: ask the relay to signal when the phone connects.
    #[arg(long, help_heading = "Linked phones")]
    pub(crate) signal_connection: bool,
}

impl SessionArgs {
    /// The ceremony settings these flags give; `links` is where links live (unless
    /// `--no-link`).
    pub(crate) fn config(&self, links: Option<LinkStore>) -> BridgeConfig {
        BridgeConfig {
            tunnel: self.relay.config(),
            timeouts: Timeouts {
                advert: self.advert_timeout,
                connect: self.connect_timeout,
                ble_connect: self.ble_connect_timeout,
                handshake: self.handshake_timeout,
                user: self.user_timeout,
                linger: self.linger,
            },
            links: if self.no_link { None } else { links },
            min_rssi: self.min_rssi,
            signal_connection: self.signal_connection,
            channel: ChannelChoice::from_name(&self.channel).unwrap_or_default(),
        }
    }
}

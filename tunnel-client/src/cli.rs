//! The relay flags, defined once for every command line that reaches a relay (`hybrid-bridge`
//! and its browser host and doctor, `phone-sim`), so each has the same name, value and help
//! everywhere: `--tunnel-override`, `--connect-to`, `--extra-ca`.

use std::path::PathBuf;

use crate::{parse_connect_to, TunnelConfig};

/// How to reach tunnel relays, as flags (`#[command(flatten)]` it into a clap parser).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RelayArgs {
    /// Use this relay for every tunnel domain, e.g. ws://127.0.0.1:8080 or
    /// wss://relay.example (also accepted as --tunnel).
    #[arg(
        long = "tunnel-override",
        alias = "tunnel",
        value_name = "URL",
        env = "HYBRID_TUNNEL_OVERRIDE",
        help_heading = "Relay"
    )]
    pub tunnel_override: Option<String>,
    /// Connect to HOST:PORT for DOMAIN (keeps TLS name and Host header); repeatable.
    #[arg(long, value_name = "DOMAIN=HOST:PORT", value_parser = parse_connect_to, help_heading = "Relay")]
    pub connect_to: Vec<(String, String)>,
    /// Extra trusted CA certificates (PEM) for the relay's TLS, besides the system's.
    #[arg(
        long,
        value_name = "FILE",
        env = "HYBRID_EXTRA_CA",
        help_heading = "Relay"
    )]
    pub extra_ca: Option<PathBuf>,
}

impl RelayArgs {
    /// The client configuration these flags describe.
    pub fn config(&self) -> TunnelConfig {
        TunnelConfig::new(
            self.tunnel_override.clone(),
            self.connect_to.clone(),
            self.extra_ca.clone(),
        )
    }
}

//! How a phone behaves ([`PhoneConfig`]): which relay and tunnel domain it uses, how its
//! simulated user answers, how it attests, whether it links, and how long it waits. Checked
//! once when a [`Phone`](crate::Phone) opens; the session machine gets the part it needs
//! ([`PhoneConfig::session`]).

use std::path::PathBuf;
use std::time::Duration;

use hybrid_protocol::tunnel::Domain;

use crate::authenticator::{Approve, Attestation, CredentialKind};
use crate::error::PhoneError;
use crate::medium::AdvertFault;
use crate::session::SessionConfig;

/// How the phone behaves. `PhoneConfig::default()` talks to the assigned domain 0 over TLS,
/// approves everything and attests with `none`.
#[derive(Clone, Debug)]
pub struct PhoneConfig {
    /// Relay base URL overriding the tunnel domain, e.g. `ws://127.0.0.1:8080` (no path).
    pub tunnel: Option<String>,
    /// `(domain, host:port)`: connect there for `domain`, keeping the TLS name.
    pub connect_to: Vec<(String, String)>,
    /// Extra CA certificate (PEM) trusted besides the system roots.
    pub extra_ca: Option<PathBuf>,
    /// Tunnel domain number put in the advert (docs/PROTOCOL.md#tunnel-domains): 0, 1 or ≥ 256.
    /// Without `tunnel`, the phone connects to this domain's host name.
    pub domain: u16,
    /// The simulated user's answer.
    pub approve: Approve,
    /// makeCredential attestation format.
    pub attestation: Attestation,
    /// Whether new credentials are synced passkeys or device-bound (chosen per credential:
    /// each one keeps the kind it was created with).
    pub credential_kind: CredentialKind,
    /// A deliberate advert fault (the session then normally times out).
    pub fault: Option<AdvertFault>,
    /// Send linking info when the QR code allows it (needs a contact ID from the relay).
    pub link: bool,
    /// Display name in linking info (docs/PROTOCOL.md#linking-info key 5).
    pub name: String,
    /// How long to wait for the desktop at each step (Noise msg1, the request, shutdown).
    pub timeout: Duration,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        Self {
            tunnel: None,
            connect_to: Vec::new(),
            extra_ca: None,
            domain: 0,
            approve: Approve::Auto,
            attestation: Attestation::None,
            credential_kind: CredentialKind::Synced,
            fault: None,
            link: true,
            name: "phone-sim".into(),
            timeout: Duration::from_secs(120),
        }
    }
}

impl PhoneConfig {
    /// Refuses a tunnel domain Chromium would ignore and a relay URL that is not ws:// or
    /// wss:// (the relay settings' own check is `TunnelConfig::check`).
    pub(crate) fn check(&self) -> Result<(), PhoneError> {
        if !Domain(self.domain).is_known() {
            return Err(PhoneError::Config(format!(
                "domain {} is neither assigned (0, 1) nor hashed (256 or more)",
                self.domain
            )));
        }
        if let Some(t) = &self.tunnel {
            if !(t.starts_with("ws://") || t.starts_with("wss://")) {
                return Err(PhoneError::Config(format!(
                    "--tunnel must be a ws:// or wss:// base URL, got {t:?}"
                )));
            }
        }
        Ok(())
    }

    /// What the session machine needs.
    pub(crate) fn session(&self) -> SessionConfig {
        SessionConfig {
            domain: Domain(self.domain),
            fault: self.fault,
            timeout: self.timeout,
        }
    }
}

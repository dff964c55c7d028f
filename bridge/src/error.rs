//! The bridge's error type (docs/STYLE.md#errors), sorted by who is at fault, each with a distinct
//! process exit code ([`BridgeError::exit_code`]). Messages are lowercase and say what to do next.

use std::time::Duration;

use hybrid_protocol::ctap::Status;
use thiserror::Error;

use hybrid_channel::ChannelError;
use tunnel_client::RelayError;

use crate::progress::Phase;
use crate::units::format_secs;

/// Every error a ceremony, the link store or the scanners can return.
#[derive(Debug, Error)]
pub enum BridgeError {
    /// Bad flags, options JSON or arguments: the caller's input. Exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Options WebAuthn refuses with `NotSupportedError`: well-formed, but asking for what
    /// the client does not do in that ceremony. Exit code 2.
    #[error("{0}")]
    NotSupported(String),
    /// Options WebAuthn refuses with `SyntaxError`: a value that names nothing it may name.
    /// Exit code 2.
    #[error("{0}")]
    Syntax(String),
    /// A stage took longer than its timeout. Exit code 3.
    #[error("{}", timeout_message(*.phase, *.after))]
    Timeout {
        /// The stage that timed out.
        phase: Phase,
        /// Its timeout.
        after: Duration,
    },
    /// No Bluetooth adapter, Bluetooth off, no system bus, or the advert file cannot be read.
    /// Exit code 4.
    #[error("{0}")]
    Bluetooth(String),
    /// The relay could not be reached (DNS, TCP, TLS), refused the upgrade, broke the
    /// WebSocket rules, or closed the tunnel on its own (limits, shutdown). Exit code 5, or
    /// 2 when our own relay settings are unusable ([`RelayError::is_local`]).
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The relay asked each try of a linked sign-in to come back later (it closed with 1013,
    /// busy, or answered 503, full or shutting down) until the time to reach the phone ran
    /// out. Exit code 5.
    #[error("the tunnel relay was busy (it closed with 1013 or answered HTTP 503: try again later) on each of {tries} tries in {}; try again in a minute, or use another relay", format_secs(*.within))]
    RelayBusy {
        /// How many times the phone was contacted.
        tries: u32,
        /// The time the tries had (the linked phone's timeout).
        within: Duration,
    },
    /// The linked phone's contact ID is permanently invalid (HTTP 410): the link was deleted.
    /// Exit code 8.
    #[error("the phone {name:?} no longer accepts this computer (HTTP 410 Gone); the link was removed, sign in with a QR code to link it again")]
    LinkGone {
        /// The link's name.
        name: String,
    },
    /// The Noise handshake failed: wrong length, failed authentication. Exit code 6.
    #[error("handshake with the phone failed: {0}")]
    Handshake(hybrid_protocol::Error),
    /// The phone sent something that breaks the protocol after the handshake. Exit code 6.
    #[error("the phone broke the protocol {during}: {error}")]
    Peer {
        /// What the bridge was doing.
        during: &'static str,
        /// The protocol error (in the message, not a separate cause: printed once).
        error: hybrid_protocol::Error,
    },
    /// The phone (or relay) closed the connection before the ceremony finished. Exit code 6.
    #[error("the connection closed {during}; the phone may have cancelled, or lost its network")]
    Closed {
        /// What the bridge was waiting for.
        during: &'static str,
    },
    /// The phone answered the CTAP request with an error status. Exit code 7.
    #[error("{} (CTAP status {:#04x})", .status.explain(), .code)]
    Ctap {
        /// The status, as far as this project knows it ([`Status::Other`] for the rest).
        status: Status,
        /// The status byte exactly as the phone sent it (the security key passes it on).
        code: u8,
    },
    /// A linked phone name that is not in the link store. Exit code 2.
    #[error("no linked phone named {0:?}; `hybrid-bridge phones list` shows the linked phones")]
    UnknownPhone(String),
    /// Reading or writing a local file (links, QR output, results). Exit code 1.
    #[error("{what} {path}: {error}")]
    File {
        /// What the bridge was doing.
        what: &'static str,
        /// The file.
        path: String,
        /// The IO error (in the message, not a separate cause: printed once).
        error: std::io::Error,
    },
    /// Anything else local (RNG failure, TLS setup). Exit code 1.
    #[error("{0}")]
    Internal(String),
}

impl From<ChannelError> for BridgeError {
    /// A relay failure stays one; a BLE channel that breaks is a Bluetooth error, and one
    /// whose framing the phone broke is the phone's fault.
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Relay(e) => Self::Relay(e),
            e @ ChannelError::Ble { .. } => Self::Bluetooth(e.to_string()),
            ChannelError::Framing(error) => Self::Peer {
                during: "on the Bluetooth channel",
                error,
            },
        }
    }
}

impl BridgeError {
    /// The process exit code for this error: 1 local failure, 2 usage, 3 timeout, 4
    /// Bluetooth, 5 relay, 6 phone protocol, 7 refused on the phone, 8 link gone.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::File { .. } | Self::Internal(_) => 1,
            Self::Usage(_) | Self::NotSupported(_) | Self::Syntax(_) | Self::UnknownPhone(_) => 2,
            Self::Timeout { .. } => 3,
            Self::Bluetooth(_) => 4,
            Self::Relay(e) if e.is_local() => 2,
            Self::Relay(_) | Self::RelayBusy { .. } => 5,
            Self::Handshake(_) | Self::Peer { .. } | Self::Closed { .. } => 6,
            Self::Ctap { .. } => 7,
            Self::LinkGone { .. } => 8,
        }
    }

    /// [`Self::File`]: `what` (e.g. "writing the QR PNG") failed on `path`.
    pub fn file(what: &'static str, path: &std::path::Path, error: std::io::Error) -> Self {
        Self::File {
            what,
            path: path.display().to_string(),
            error,
        }
    }

    pub(crate) fn peer(during: &'static str) -> impl FnOnce(hybrid_protocol::Error) -> Self {
        move |error| Self::Peer { during, error }
    }
}

fn timeout_message(phase: Phase, after: Duration) -> String {
    let s = format_secs(after);
    match phase {
        Phase::ShowingQr | Phase::AwaitingAdvert => format!(
            "no advert matched this QR code in {s}; is Bluetooth on and the phone nearby? scan the code again to retry"
        ),
        Phase::ContactingPhone => format!(
            "the linked phone did not answer in {s}; is it online, with Bluetooth on and nearby?"
        ),
        Phase::Connecting => format!(
            "the tunnel relay did not open the connection in {s}; check the network or the relay address (or use --channel ble with a phone that offers the Bluetooth channel)"
        ),
        Phase::Handshaking => format!(
            "the phone did not complete the handshake in {s}; try again with a new QR code"
        ),
        Phase::AwaitingUser => format!(
            "nobody confirmed on the phone in {s}; try again and confirm on the phone"
        ),
        Phase::Done => format!("timed out after {s}"),
    }
}

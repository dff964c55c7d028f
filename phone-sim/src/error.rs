//! The one error type of `phone-sim`, sorted by who is at fault (docs/STYLE.md#errors): the QR code
//! or the desktop sent something wrong (`Malformed`, `PeerMisbehaved`), the relay refused or
//! dropped us, the local store is broken, or an IO step failed or timed out. Messages are
//! lowercase and say what to do next.

use std::path::PathBuf;
use std::time::Duration;

use hybrid_protocol::ctap::Status;

/// Everything that can end a phone session or a store command.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    /// The QR code could not be read or parsed.
    #[error("cannot use this QR code: {0}")]
    Qr(String),
    /// A protocol-level failure from `hybrid-protocol` (bad handshake, bad frame, unknown
    /// message type, malformed linking data).
    #[error("{context}: {error}")]
    Protocol {
        /// What the phone was doing.
        context: &'static str,
        /// The protocol crate's error (in the message, not a separate cause: printed once).
        error: hybrid_protocol::Error,
    },
    /// The desktop sent a CTAP request the phone rejected; the status was sent back when
    /// `replied` is true.
    #[error("the desktop sent a bad CTAP request: {message} (CTAP status {:#04x}{})", *status as u8, if *replied { ", sent to the desktop" } else { "" })]
    BadRequest {
        /// The CTAP status.
        status: Status,
        /// What was wrong.
        message: String,
        /// Whether the status was sent to the desktop.
        replied: bool,
    },
    /// The desktop broke the session rules (second command, unexpected message, early close).
    #[error("the desktop broke the hybrid session rules: {0}")]
    PeerMisbehaved(String),
    /// The relay refused, closed or dropped a connection, or cannot be reached; `error`
    /// says which and whose doing it was.
    #[error("{error} (while {context})")]
    Relay {
        /// What the phone was doing.
        context: &'static str,
        /// What the relay did (in the message, not a separate cause: printed once).
        error: tunnel_client::RelayError,
    },
    /// `/cable/register/<id>` answered 410: the contact ID (and every link) is gone.
    #[error("the relay no longer knows this phone's contact ID (410 Gone); its links are dead, register again")]
    ContactGone,
    /// Nothing arrived in time.
    #[error("timed out after {} s while {context}; is the desktop still waiting and following the same advert file or relay?", .after.as_secs())]
    Timeout {
        /// What the phone was waiting for.
        context: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// The credential store file is unreadable or corrupt. It is never silently replaced.
    #[error("credential store {}: {reason}; fix or move the file away (it is never overwritten when unreadable)", .path.display())]
    Store {
        /// The store file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Reading or writing a local file (advert file, QR file, CA file) failed.
    #[error("{what} {}: {error}", .path.display())]
    File {
        /// What the file is for.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The IO error (in the message, not a separate cause: printed once).
        error: std::io::Error,
    },
    /// A configuration value is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Bluetooth (BlueZ) is unavailable or refused to advertise.
    #[error("bluetooth: {0}")]
    Ble(String),
}

impl PhoneError {
    pub(crate) fn protocol(context: &'static str) -> impl FnOnce(hybrid_protocol::Error) -> Self {
        move |error| Self::Protocol { context, error }
    }

    /// Maps an IO error on `path` to [`PhoneError::File`], naming what was being done
    /// ("reading", "writing the attestation CA to").
    pub fn file(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |error| Self::File { what, path, error }
    }

    /// Whether the phone's own settings are at fault (bad relay URL, extra CA file).
    pub fn is_local(&self) -> bool {
        match self {
            Self::Relay { error, .. } => error.is_local(),
            Self::Config(_) | Self::File { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn store(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::Store {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

//! Bridge errors as the `DOMException`s a browser's own WebAuthn implementation would throw
//! (WebAuthn L3 §5.1.3, §5.1.4, §6.3.2): `NotAllowedError` for cancel, timeout, denial and
//! every transport failure (browsers do not tell pages why), `SecurityError` for an RP ID
//! the origin may not use, `InvalidStateError` for an excluded credential,
//! `NotSupportedError` for no supported algorithm or an option the ceremony does not take,
//! `SyntaxError` for options that name what they may not, `TypeError` for malformed options. Each
//! also gets a machine-readable `code` for the extension's overlay and a message a person
//! can act on; the page sees only the name.

use hybrid_protocol::ctap::Status;
use serde::Serialize;

use crate::error::BridgeError;

/// The `DOMException` (or `TypeError`) name the page sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum DomName {
    /// Aborted through an `AbortSignal` (the extension raises it; the host never does).
    AbortError,
    /// The authenticator already holds an excluded credential.
    InvalidStateError,
    /// Cancelled, timed out, denied, or the phone could not be reached.
    NotAllowedError,
    /// No requested algorithm or option is supported.
    NotSupportedError,
    /// The RP ID is not the origin's host or a registrable parent of it, or the origin is not
    /// a secure context.
    SecurityError,
    /// Options that name what they may not (a `prf.evalByCredential` key outside
    /// `allowCredentials`).
    SyntaxError,
    /// Malformed options.
    TypeError,
    /// A local failure with no WebAuthn equivalent.
    UnknownError,
}

/// One error for the extension: `{"name", "code", "message"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomError {
    /// What the page sees.
    pub name: DomName,
    /// Why, for the overlay (`cancelled`, `timeout`, `denied`, `excluded`, …).
    pub code: &'static str,
    /// What a person can do about it.
    pub message: String,
}

impl DomError {
    /// An error with these parts.
    pub fn new(name: DomName, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            name,
            code,
            message: message.into(),
        }
    }

    /// A malformed or unknown request from the extension.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(DomName::TypeError, "bad_request", message)
    }

    /// The person (or the extension) cancelled.
    pub fn cancelled() -> Self {
        Self::new(
            DomName::NotAllowedError,
            "cancelled",
            "the request was cancelled",
        )
    }

    /// How a failed ceremony looks to the page.
    pub fn from_bridge(e: &BridgeError) -> Self {
        use DomName::*;
        let (name, code) = match e {
            BridgeError::Usage(_) => (TypeError, "bad_request"),
            BridgeError::NotSupported(_) => (NotSupportedError, "unsupported"),
            BridgeError::Syntax(_) => (SyntaxError, "bad_request"),
            BridgeError::Timeout { .. } => (NotAllowedError, "timeout"),
            BridgeError::Bluetooth(_) => (NotAllowedError, "bluetooth"),
            BridgeError::Relay(_) | BridgeError::RelayBusy { .. } => (NotAllowedError, "relay"),
            BridgeError::LinkGone { .. } => (NotAllowedError, "link_gone"),
            BridgeError::UnknownPhone(_) => (NotAllowedError, "unknown_phone"),
            BridgeError::Handshake(_) | BridgeError::Peer { .. } => {
                (NotAllowedError, "phone_protocol")
            }
            BridgeError::Closed { .. } => (NotAllowedError, "closed"),
            BridgeError::Ctap { status, .. } => match status {
                Status::CredentialExcluded => (InvalidStateError, "excluded"),
                Status::UnsupportedAlgorithm => (NotSupportedError, "unsupported_algorithm"),
                Status::UnsupportedOption | Status::UnsupportedExtension => {
                    (NotSupportedError, "unsupported")
                }
                Status::OperationDenied | Status::NotAllowed => (NotAllowedError, "denied"),
                Status::UserActionTimeout => (NotAllowedError, "timeout"),
                Status::NoCredentials => (NotAllowedError, "no_credentials"),
                _ => (NotAllowedError, "phone_error"),
            },
            BridgeError::File { .. } | BridgeError::Internal(_) => (UnknownError, "internal"),
        };
        Self::new(name, code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctap_statuses_map_like_a_browser() {
        let ctap = |s| {
            DomError::from_bridge(&BridgeError::Ctap {
                status: s,
                code: s as u8,
            })
        };
        assert_eq!(
            ctap(Status::CredentialExcluded).name,
            DomName::InvalidStateError
        );
        assert_eq!(
            ctap(Status::UnsupportedAlgorithm).name,
            DomName::NotSupportedError
        );
        assert_eq!(ctap(Status::OperationDenied).name, DomName::NotAllowedError);
        assert_eq!(ctap(Status::OperationDenied).code, "denied");
        let t = DomError::from_bridge(&BridgeError::Timeout {
            phase: crate::progress::Phase::AwaitingAdvert,
            after: std::time::Duration::from_secs(1),
        });
        assert_eq!((t.name, t.code), (DomName::NotAllowedError, "timeout"));
    }
}

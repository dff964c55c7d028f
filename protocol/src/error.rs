//! The crate's error type, sorted by who is at fault (docs/STYLE.md#errors): [`Malformed`] bytes
//! that do not parse, a [`PeerMisbehaved`] with well-formed bytes that break the protocol, and
//! [`Misuse`] of this API. Messages are lowercase, name what was wrong and, where it helps,
//! what to do next. Detail stays here; what a peer is told is up to the IO crates.

use thiserror::Error;

/// Every error of the protocol crate.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bytes or text that do not parse.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// Well-formed input from the peer that breaks the protocol.
    #[error(transparent)]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// A call this API does not allow.
    #[error(transparent)]
    Misuse(#[from] Misuse),
}

/// Input that does not parse. The string says what was wrong, for a person to read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// A `FIDO:/` QR code.
    #[error("QR code: {0}")]
    Qr(String),
    /// CBOR that is not canonical CTAP2 CBOR, or has the wrong shape.
    #[error("CBOR: {0}")]
    Cbor(String),
    /// A tunnel URL, path or header value.
    #[error("tunnel URL: {0}")]
    Url(String),
    /// BLE advert service data.
    #[error("BLE advert: {0}")]
    Advert(String),
    /// A line of the simulated medium's advert file.
    #[error("advert file line: {0}")]
    AdvertLine(String),
    /// A Noise handshake message of the wrong length.
    #[error("handshake message must be {expected} bytes, got {got}")]
    HandshakeLength {
        /// Required length.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// A transport frame too short to hold a tag or with bad padding.
    #[error("encrypted frame: {0}")]
    Frame(String),
    /// A post-handshake, update or typed message.
    #[error("message: {0}")]
    Message(String),
    /// Linking information or a client payload.
    #[error("linking: {0}")]
    Linking(String),
    /// A message of the relay's contact channel (a wake-up).
    #[error("contact channel: {0}")]
    Contact(String),
    /// A CTAP2 request or response.
    #[error("CTAP: {0}")]
    Ctap(String),
    /// A P-256 public or private key.
    #[error("key: {0}")]
    Key(String),
}

/// Well-formed input that breaks the protocol.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PeerMisbehaved {
    /// An advert tag that does not verify under this key: the advert is someone else's.
    #[error("BLE advert is not for this session (tag mismatch)")]
    AdvertNotOurs,
    /// A decrypted advert whose reserved byte is not zero.
    #[error(
        "BLE advert has reserved byte {0:#04x} set; it needs a feature this client did not offer"
    )]
    AdvertReservedBits(u8),
    /// A tunnel domain number that is neither assigned (0, 1) nor hashed (≥ 256).
    #[error(
        "tunnel server domain {0} is not assigned (0 or 1) and not a hashed domain (256 or more)"
    )]
    UnknownDomain(u16),
    /// A handshake message whose authentication failed: wrong PSK, keys or tampering.
    #[error("handshake message failed authentication: the peer used other keys, or the message was altered")]
    HandshakeAuthentication,
    /// A handshake message carrying a public key that is not a valid P-256 point.
    #[error("handshake message carries an invalid P-256 point")]
    HandshakeInvalidPoint,
    /// A handshake message with a non-empty payload.
    #[error("handshake message carries a {0}-byte payload; hybrid handshakes carry none")]
    HandshakePayload(usize),
    /// A transport frame whose AEAD tag does not verify.
    #[error("encrypted frame failed authentication: it was altered, replayed or reordered")]
    FrameAuthentication,
    /// A message type this implementation does not know.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// A message of a type not allowed at this point.
    #[error("unexpected message: expected {expected}, got {got}")]
    UnexpectedMessage {
        /// What the state machine waited for.
        expected: &'static str,
        /// What arrived.
        got: String,
    },
    /// Linking information whose handshake signature does not verify.
    #[error("linking information has an invalid handshake signature; the link was not stored")]
    LinkSignature,
    /// The post-handshake message lacks something the protocol requires.
    #[error("post-handshake message: {0}")]
    PostHandshake(String),
}

/// A call this API does not allow.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Misuse {
    /// More than 2²⁴−1 messages in one direction.
    #[error("message sequence number exhausted (2^24 - 1 messages); start a new session")]
    SequenceExhausted,
    /// A message too large for one frame.
    #[error("message of {0} bytes is larger than the 1 MiB limit")]
    MessageTooLarge(usize),
    /// The caller's random number generator failed.
    #[error("random number generator failed: {0}")]
    Rng(String),
    /// Anything else a caller did wrong.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Shorthand for a malformed-CBOR error.
    pub(crate) fn cbor(msg: impl Into<String>) -> Self {
        Malformed::Cbor(msg.into()).into()
    }
}

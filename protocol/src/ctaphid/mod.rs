//! CTAPHID, the USB HID transport of CTAP (CTAP 2.2 §11.2), device side and sans-IO: the
//! [`Engine`] of a security key. It takes the host's 64-byte output reports, the time and the
//! answers to the requests it handed out, and gives back input reports to send and
//! [`Event`]s for the authenticator behind it. No IO, no clock, no global randomness: `now`
//! comes with every call and channel IDs come from the caller's RNG.
//!
//! ```text
//!  host ── output report ──→ handle_report ─┐            ┌─→ poll_report ── input report ──→ host
//!  clock ──────────────────→ handle_tick ───┤  Engine    ├─→ poll_event: Request / Cancelled / Wink
//!  authenticator ── reply ─→ handle_reply ──┤            └─→ poll_timeout: when to tick next
//!  authenticator ─ status ─→ handle_status ─┘
//! ```
//!
//! What the engine answers itself, and how (CTAP 2.2 §11.2.9):
//! - `INIT` on the broadcast channel allocates a channel and echoes the 8-byte nonce; on an
//!   allocated channel it resynchronises that channel (a half-received message or a pending
//!   request on it is dropped, the request with [`Event::Cancelled`]).
//! - `PING` echoes; `WINK` answers empty and reports [`Event::Wink`]; `LOCK` locks the device to
//!   one channel for up to 10 s.
//! - `MSG` (CTAP1/U2F) gets `ERR_INVALID_CMD`, as on every CTAP2-only key: the `INIT` reply's
//!   capabilities say `NMSG`.
//! - `CBOR` is handed out as an [`Event::Request`]; until it is answered the engine sends a
//!   `KEEPALIVE` every 100 ms with the status set by [`Engine::handle_status`]. `CANCEL` on that
//!   channel answers it with `CTAP2_ERR_KEEPALIVE_CANCEL` and reports [`Event::Cancelled`];
//!   the engine never answers `CANCEL` itself.
//! - Errors: `ERR_INVALID_CHANNEL` (channel 0, an unallocated channel, a command other than
//!   `INIT` on the broadcast channel), `ERR_INVALID_SEQ` (a continuation out of order, or a new
//!   message on a channel still receiving one), `ERR_INVALID_LEN` (longer than 7609 bytes, or
//!   the wrong length for `INIT`, `LOCK`, `WINK` or `CBOR`), `ERR_CHANNEL_BUSY` (a message from
//!   another channel while one is received or processed, or while the device is locked),
//!   `ERR_MSG_TIMEOUT` (a message whose continuation packets stop for
//!   [`MESSAGE_TIMEOUT`]), `ERR_INVALID_PAR` (a lock longer than 10 s), `ERR_INVALID_CMD`
//!   (anything else). Continuation packets that belong to no message are ignored.
//!
//! Drain order after each `handle_*` call: [`Engine::poll_event`] until `None` (answering
//! requests may queue reports), then [`Engine::poll_report`] until `None`, then sleep until
//! [`Engine::poll_timeout`] (or the next input) and call [`Engine::handle_tick`].

mod engine;
pub mod packet;

pub use engine::Engine;
pub use packet::{Packet, MAX_MESSAGE_LEN, REPORT_LEN};

use std::time::Duration;

/// The broadcast channel, on which `INIT` allocates channels.
pub const BROADCAST_CID: u32 = 0xffff_ffff;
/// The CTAPHID protocol version the `INIT` reply reports.
pub const PROTOCOL_VERSION: u8 = 2;
/// How often a `KEEPALIVE` goes out while a request is processed (§11.2.9.1.7: every 100 ms).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);
/// How long the engine waits for the next continuation packet of a message before it answers
/// `ERR_MSG_TIMEOUT`. Hosts write a message's packets back to back; keys use 0.5–3 s.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest `LOCK` (CTAP 2.2 §11.2.9.2.2: 10 s).
pub const MAX_LOCK: Duration = Duration::from_secs(10);
/// How many channels are remembered; the least recently used is forgotten first (each
/// WebAuthn call allocates a channel, and a key runs for a whole session).
pub const MAX_CHANNELS: usize = 256;

/// CTAPHID commands (§11.2.9), without bit 7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// Echo.
    Ping = 0x01,
    /// A CTAP1/U2F APDU.
    Msg = 0x03,
    /// Lock the device to a channel.
    Lock = 0x04,
    /// Allocate or resynchronise a channel.
    Init = 0x06,
    /// Identify the device to the person.
    Wink = 0x08,
    /// A CTAP2 request or response.
    Cbor = 0x10,
    /// Cancel the channel's pending request.
    Cancel = 0x11,
    /// The device is still working (device to host only).
    Keepalive = 0x3b,
    /// A transport error (device to host only).
    Error = 0x3f,
}

impl Command {
    /// Parses a command byte (bit 7 already cleared).
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::Ping,
            0x03 => Self::Msg,
            0x04 => Self::Lock,
            0x06 => Self::Init,
            0x08 => Self::Wink,
            0x10 => Self::Cbor,
            0x11 => Self::Cancel,
            0x3b => Self::Keepalive,
            0x3f => Self::Error,
            _ => return None,
        })
    }
}

/// The one-byte payload of a `CTAPHID_ERROR` (§11.2.9.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HidError {
    /// ERR_INVALID_CMD: the command is not known or not supported.
    InvalidCommand = 0x01,
    /// ERR_INVALID_PAR: a parameter is out of range.
    InvalidParameter = 0x02,
    /// ERR_INVALID_LEN: the message is too long, or the wrong length for its command.
    InvalidLength = 0x03,
    /// ERR_INVALID_SEQ: a continuation packet out of order.
    InvalidSeq = 0x04,
    /// ERR_MSG_TIMEOUT: a message's packets stopped arriving.
    MessageTimeout = 0x05,
    /// ERR_CHANNEL_BUSY: another channel has the device.
    ChannelBusy = 0x06,
    /// ERR_LOCK_REQUIRED: the command needs a lock (not used by this engine).
    LockRequired = 0x0a,
    /// ERR_INVALID_CHANNEL: the channel is reserved or not allocated.
    InvalidChannel = 0x0b,
    /// ERR_OTHER.
    Other = 0x7f,
}

/// The status byte of a `KEEPALIVE` (CTAP 2.2 §11.2.9.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KeepaliveStatus {
    /// STATUS_PROCESSING: the authenticator is working.
    Processing = 1,
    /// STATUS_UPNEEDED: the authenticator waits for the person.
    UpNeeded = 2,
}

/// Capability flags in the `INIT` reply (CTAP 2.2 §11.2.9.1.3).
pub mod capability {
    /// CAPABILITY_WINK: `WINK` is implemented.
    pub const WINK: u8 = 0x01;
    /// CAPABILITY_CBOR: `CBOR` is implemented.
    pub const CBOR: u8 = 0x04;
    /// CAPABILITY_NMSG: `MSG` is *not* implemented.
    pub const NMSG: u8 = 0x08;
}

/// `CTAP2_ERR_KEEPALIVE_CANCEL`, the answer to a request the host cancelled.
pub const CTAP2_ERR_KEEPALIVE_CANCEL: u8 = 0x2d;
/// `CTAP1_ERR_OTHER`, the answer when a reply cannot be carried (longer than 7609 bytes).
pub const CTAP1_ERR_OTHER: u8 = 0x7f;

/// The device version the `INIT` reply reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeviceVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Build.
    pub build: u8,
}

/// Names a request handed out by [`Engine::poll_event`], for its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a request ended without its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// The host sent `CANCEL` on the request's channel (answered `KEEPALIVE_CANCEL`).
    HostCancelled,
    /// The host sent `INIT` on the request's channel (resynchronisation; no answer).
    Resynchronised,
    /// The host closed the device ([`Engine::handle_host_closed`]).
    HostClosed,
}

/// What the engine asks of the authenticator behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Event {
    /// A `CBOR` message (`command ‖ CBOR`): answer it with [`Engine::handle_reply`]
    /// (`status ‖ CBOR`). Until then the device is busy and keepalives go out.
    Request {
        /// For the answer.
        id: RequestId,
        /// The channel it came on.
        cid: u32,
        /// `command ‖ CBOR`, at least one byte.
        payload: Vec<u8>,
    },
    /// The request ended without an answer: stop working on it.
    Cancelled {
        /// Which.
        id: RequestId,
        /// Why.
        reason: CancelReason,
    },
    /// The host asked the device to identify itself (`WINK`).
    Wink {
        /// The channel it came on.
        cid: u32,
    },
}

/// Why [`Engine::handle_reply`] did not send an answer as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The request is no longer pending (cancelled, resynchronised, or answered already).
    #[error("request {0} is no longer pending (the host cancelled it or moved on)")]
    NotPending(RequestId),
    /// The answer does not fit in a CTAPHID message; `CTAP1_ERR_OTHER` went out instead.
    #[error("an answer of {0} bytes does not fit in a CTAPHID message (at most 7609 bytes); the host got CTAP1_ERR_OTHER")]
    TooLong(usize),
    /// An empty answer has no status byte; `CTAP1_ERR_OTHER` went out instead.
    #[error("an empty answer has no CTAP status byte; the host got CTAP1_ERR_OTHER")]
    Empty,
}

#[cfg(test)]
mod tests;
